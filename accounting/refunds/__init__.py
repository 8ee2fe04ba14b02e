"""The refund flow: the refund check (whether a purchase may be refunded, and what a refund
would move) and the refund itself, at most once per purchase."""
