"""The Coinbooks domain: commodities, accounts, journal entries, invariants and flows.

This package never imports the GraphQL layer (``schema``) or the process (``api``).
"""
