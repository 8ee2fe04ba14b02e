"""The payout flow: payout methods, the second factor, and a payout's phases (requested, sent,
paid, rejected, failed), each posted once."""
