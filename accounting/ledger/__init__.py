"""The ledger core: money and commodities, the chart of accounts, entries and their checks,
posting (locks, sequence numbers, idempotency, transactions), group commit, keyset pages, FX
rates, balances, the core tables and the checks of invariants 1 to 5. It knows no flow."""
