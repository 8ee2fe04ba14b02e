"""Corrections by finance: the reversal of a mistaken entry (a plain transfer or a manual
adjustment, never an entry a flow owns), and manual adjusting entries under maker-checker (one
finance person proposes, another approves before anything posts)."""
