"""Period close and the journal's seals: finance closes a month (no entry may be dated into it
after), and every entry is sealed with a hash chained over its predecessor's, so that the
journal is tamper-evident (docs/accounting.md, "Closing a period")."""
