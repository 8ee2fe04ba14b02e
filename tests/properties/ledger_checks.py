"""The ledger's auditor: after every step, the database's wallets equal the model's, the trial
balance balances per commodity, every entry and purchase is the model's, and the provider took
no money for a failed purchase."""

from __future__ import annotations

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger import chart
from accounting.ledger.balances import account_balance
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.tables import PurchaseRow
from accounting.reads.reports import trial_balance
from tests.properties.ledger_model import ISSUED, USERS, Model, coins_code, value_code


async def check_books(sessions: async_sessionmaker[AsyncSession], model: Model) -> None:
    async with sessions() as session:
        await check_balances(session, model)
        await check_records(session, model)


async def check_balances(session: AsyncSession, model: Model) -> None:
    for user in USERS:
        for code in (coins_code(user), value_code(user)):
            found = await account_balance(session, code)
            assert (found.balance if found else 0) == model.held(code), code
    for code in (ISSUED, chart.coins_spent().code):
        found = await account_balance(session, code)
        assert found is not None
        assert found.balance == model.balances[code], code  # both debit-normal

    books = await trial_balance(session)
    assert books.balanced, books.totals
    for total in books.totals:
        assert total.debit == total.credit, total


async def check_records(session: AsyncSession, model: Model) -> None:
    entries = await session.scalar(select(func.count()).select_from(JournalEntryRow))
    assert entries == len(model.entries)
    purchases = {
        row.id: (row.status, row.entry_id)
        for row in (await session.scalars(select(PurchaseRow))).all()
    }
    assert purchases == {p.id: (p.status, p.entry_id) for p in model.purchases.values()}
    paid_but_failed = (
        await session.scalars(
            text(
                "SELECT pu.id FROM purchase pu JOIN sandbox_payment s"
                " ON s.merchant_reference = 'purchase:' || pu.id"
                " WHERE s.status = 'succeeded' AND pu.status = 'failed'"
            )
        )
    ).all()
    assert paid_but_failed == [], "the provider took money for a failed purchase"
