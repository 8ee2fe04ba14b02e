"""Breakage: the deferred value of coins left unused for the policy's period, recognised as
revenue by a finance run; the coins stay spendable."""
