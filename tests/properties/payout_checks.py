"""The payouts' auditor: after every step each creator's diamonds by state and payable, the
cash in transit, paid from the bank and the diamonds redeemed are the model's."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.balances import account_balance, creator_balances
from tests.properties.payout_model import Model


async def check_books(sessions: async_sessionmaker[AsyncSession], model: Model) -> None:
    async with sessions() as session:
        for creator, expected in model.creators.items():
            found = await creator_balances(session, creator, "USD")
            assert (
                found.diamonds_pending,
                found.diamonds_available,
                found.diamonds_reserved,
                found.payable_micros,
            ) == (expected.pending, expected.available, expected.reserved, expected.payable), (
                creator
            )
        for spec, amount in (
            (chart.payouts_in_transit("USD"), model.in_transit),
            (chart.bank("USD"), model.bank),
            (chart.diamonds_redeemed(), -model.redeemed),
        ):
            balance = await account_balance(session, spec.code)
            assert (balance.balance if balance else 0) == amount, spec.code
