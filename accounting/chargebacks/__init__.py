"""The chargeback flow: provider events (disputes opened, won and lost; provider and app-store
refunds) taking back a purchase's coins and the pending diamonds its spent coins paid for."""
