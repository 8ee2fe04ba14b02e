"""The purchase flow: coins bought through a payment provider (catalog, fees, gateways),
posted once the provider answers; its rules, tables, errors, checks, and the named reads other
flows use (``reads.py``)."""
