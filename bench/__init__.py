"""The Coinbooks benchmark: purchases and gifts per second through the accounting core and
through GraphQL over HTTP, each as a ratio of PostgreSQL's own pgbench TPC-B on the same server
in the same run, storage per gift, the service's memory, and wallet reads over HTTP against a
history of millions of postings, with the books checked after every phase.

Run it with ``make bench`` (``python -m bench --help`` for the options); docs/performance.md
says what it measures and how to read it.
"""
