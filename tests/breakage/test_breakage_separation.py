"""A breakage run passes over the wallet of the finance person who runs it: nobody acts with a
staff role on their own account. Ana and Fin (in finance, with a wallet of their own) each buy
350 coins for $4.99 on day T and never touch them; as of T + 730 days both are dormant. Fin's
run breaks Ana's wallet alone ($4.99 of deferred value to breakage revenue); Fay's run, as of
the same date, breaks Fin's ($4.99 more), and a forecast by Fin never lists Fin's own."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from tests.breakage.support import buy, last_moved_on, run, wallet


async def test_a_run_passes_over_the_runners_own_wallet(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await buy(purchases, "ana", "ana-buys-0001")
    await buy(purchases, "fin", "fin-buys-0001")
    as_of = max(await last_moved_on(sessions, "ana"), await last_moved_on(sessions, "fin"))
    as_of += timedelta(days=730)

    forecast = await run(sessions, as_of, key="fin-forecast-01", dry_run=True, actor="user:fin")
    by_fin = await run(sessions, as_of, key="fin-run-000001", actor="user:fin")

    assert [w.user_id for w in forecast.wallets] == ["ana"]
    assert [(w.user_id, w.value_micros) for w in by_fin.wallets] == [("ana", 4_990_000)]
    assert await wallet(sessions, "fin") == (350, 4_990_000)  # untouched
    by_fay = await run(sessions, as_of, key="fay-run-000001", actor="user:fay")
    assert [(w.user_id, w.value_micros) for w in by_fay.wallets] == [("fin", 4_990_000)]
    assert await wallet(sessions, "fin") == (350, 0)  # coins stay spendable, value recognised
