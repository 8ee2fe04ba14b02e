"""Reads and reports over the books, above the flows: wallet histories and purchase lists,
earnings and leaderboards, the trial balance."""
