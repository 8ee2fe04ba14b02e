"""Tests of the reads over the books: the journal and its export."""
