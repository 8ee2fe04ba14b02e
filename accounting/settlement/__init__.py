"""Provider settlement: importing a provider's settlement report, posting what it settles and
reconciling every line against the ledger (DESIGN.md, Settlement and reconciliation)."""
