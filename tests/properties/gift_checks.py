"""The gift machine's auditor: the books read back and compared with the model.

After every step the books equal the model: every wallet, receivable, creator, revenue,
clearing and fee account; a wallet at zero coins holds zero value; the trial balance balances;
the entries, released gifts, chargebacks, refunds, freezes and provider events are the model's;
and the money adds up: deferred revenue + gift revenue + feature revenue - promotions + creator
payable + payouts in transit and paid - refund and chargeback contra revenue - losses booked to
receivables or fraud = everything the purchases still standing brought in. After each
chargeback and each dispute closed, the chargeback's record says what the model says.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.tables import ChargebackClawbackRow, ChargebackRow, ProviderEventRow
from accounting.gifts.tables import GiftRow
from accounting.ledger import chart
from accounting.ledger.tables import AccountRow, JournalEntryRow
from accounting.policy.tables import UserStatusRow
from accounting.reads.reports import trial_balance
from accounting.refunds.tables import RefundRow
from tests.properties.gift_model import (
    CREATORS,
    FUNCTIONAL,
    PEOPLE,
    Model,
    ModelChargeback,
    ModelGift,
)

Balances = Mapping[str, int]
"""Every account's balance by its code, in the account's natural sign."""


async def check_books(sessions: async_sessionmaker[AsyncSession], model: Model) -> None:
    async with sessions() as session:
        balances: dict[str, int] = {
            code: int(balance)
            for code, balance in (
                await session.execute(
                    select(AccountRow.code, AccountRow.balance * AccountRow.normal_sign)
                )
            ).all()
        }
        deferred, receivable = check_wallets(balances, model)
        payable = check_creators(balances, model)
        platform = check_platform(balances, model)
        # every dollar the standing purchases brought in is still deferred, earned, owed to a
        # creator or paid out to one, or given back: refunds and chargebacks took back what
        # they released, what they clawed back, the loss they booked and the rest as contra
        # revenue
        assert (
            deferred
            + platform["gift revenue"]
            + platform["feature revenue"]
            - platform["promotions"]
            + payable
            + platform["in transit"]
            - platform["bank"]
            - platform["refunds"]
            - platform["chargebacks"]
            - platform["fraud losses"]
            - receivable
            == model.purchased_value
        )
        await check_records(session, model)


def balance(balances: Balances, spec: chart.AccountSpec) -> int:
    return balances.get(spec.code, 0)


def check_wallets(balances: Balances, model: Model) -> tuple[int, int]:
    """Every wallet's coins and value and what each user owes are the model's; the deferred
    value and the receivables in all."""
    deferred = 0
    receivable = 0
    for user in PEOPLE:
        coins = balance(balances, chart.user_coins(user))
        value = balance(balances, chart.user_coins_value(user, FUNCTIONAL))
        owes = balance(balances, chart.user_receivable(user, FUNCTIONAL))
        assert (coins, value, owes) == (
            model.coins[user],
            model.value[user],
            model.receivable[user],
        ), user
        assert coins or not value, f"{user} holds no coins but {value} of value"
        deferred += value
        receivable += owes
    return deferred, receivable


def check_creators(balances: Balances, model: Model) -> int:
    """Every creator's diamonds by state and payable are the model's; the payable in all."""
    payable = 0
    for creator in CREATORS:
        found = [
            balance(balances, chart.creator_diamonds(creator, state))
            for state in ("pending", "available", "reserved")
        ]
        assert found == [
            model.pending[creator],
            model.available[creator],
            model.reserved[creator],
        ], creator
        owed = balance(balances, chart.creator_payable(creator, FUNCTIONAL))
        assert owed == model.payable[creator], creator
        payable += owed
    return payable


def check_platform(balances: Balances, model: Model) -> dict[str, int]:
    """The platform's revenue, contra revenue, losses, payouts, clearing and dispute fee
    accounts are the model's; the first of them, by name."""
    platform = {
        "gift revenue": balance(balances, chart.revenue("gifts", FUNCTIONAL)),
        "feature revenue": balance(balances, chart.revenue("features", FUNCTIONAL)),
        "promotions": balance(balances, chart.promotions(FUNCTIONAL)),
        "refunds": balance(balances, chart.refunds_contra_revenue(FUNCTIONAL)),
        "chargebacks": balance(balances, chart.chargebacks_contra_revenue(FUNCTIONAL)),
        "fraud losses": balance(balances, chart.fraud_losses(FUNCTIONAL)),
        "in transit": balance(balances, chart.payouts_in_transit(FUNCTIONAL)),
        "bank": balance(balances, chart.bank(FUNCTIONAL)),
        "redeemed": balance(balances, chart.diamonds_redeemed()),
    }
    assert platform == {
        "gift revenue": model.revenue_gifts,
        "feature revenue": model.revenue_features,
        "promotions": model.promotions,
        "refunds": model.contra_refunds,
        "chargebacks": model.contra_chargebacks,
        "fraud losses": model.fraud_losses,
        "in transit": model.in_transit,
        "bank": model.bank,
        "redeemed": -model.redeemed,
    }
    clearing = {
        code: amount
        for code, amount in balances.items()
        if code.startswith("platform:clearing:") and amount
    }
    assert clearing == {
        chart.provider_clearing(provider, currency).code: amount
        for (provider, currency), amount in model.clearing.items()
        if amount
    }
    fees = {
        code: amount
        for code, amount in balances.items()
        if code.startswith("platform:expense:dispute_fees:") and amount
    }
    assert fees == {
        chart.dispute_fees(currency).code: amount
        for currency, amount in model.dispute_fees.items()
        if amount
    }
    return platform


async def check_records(session: AsyncSession, model: Model) -> None:
    """The trial balance balances; the entries, released gifts, chargebacks, refunds, freezes
    and provider events are the model's."""
    books = await trial_balance(session)
    assert books.balanced, books.totals
    entries = await session.scalar(select(func.count()).select_from(JournalEntryRow))
    assert entries == model.entries
    released = set(
        (
            await session.scalars(select(GiftRow.id).where(GiftRow.release_entry_id.is_not(None)))
        ).all()
    )
    assert released == {g.id for g in model.gifts if g.released}
    chargebacks = {
        purchase_id: status
        for purchase_id, status in (
            await session.execute(select(ChargebackRow.purchase_id, ChargebackRow.status))
        ).all()
    }
    assert chargebacks == {c.purchase.id: c.status for c in model.chargebacks}
    refunded = set((await session.scalars(select(RefundRow.purchase_id))).all())
    assert refunded == {p.id for p in model.purchases if p.refunded}
    frozen = set(await session.scalars(select(UserStatusRow.user_id).where(UserStatusRow.frozen)))
    assert frozen == model.frozen
    events = await session.scalar(select(func.count()).select_from(ProviderEventRow))
    assert events == model.events


async def check_chargeback(
    sessions: async_sessionmaker[AsyncSession], chargeback_id: int, expected: ModelChargeback
) -> None:
    """The chargeback's record says what the model says it clawed back and lost."""
    async with sessions() as session:
        row = await session.get(ChargebackRow, chargeback_id)
        clawbacks = (
            await session.scalars(
                select(ChargebackClawbackRow)
                .where(ChargebackClawbackRow.chargeback_id == chargeback_id)
                .order_by(ChargebackClawbackRow.gift_id)
            )
        ).all()
    assert row is not None
    purchase = expected.purchase
    assert (
        row.purchase_id,
        row.user_id,
        row.kind,
        row.status,
        row.cash_minor,
        row.value_paid_micros,
        row.coins_clawed,
        row.coins_spent,
        row.value_released_micros,
        row.diamonds_clawed,
        row.payable_clawed_micros,
        row.loss_micros,
        row.loss_booked_to,
        row.contra_revenue_micros,
    ) == (
        purchase.id,
        purchase.user,
        expected.kind,
        expected.status,
        purchase.price_minor,
        purchase.value,
        expected.coins_clawed,
        expected.coins_spent,
        expected.released,
        sum(c.diamonds for c in expected.clawbacks),
        expected.payable,
        expected.loss,
        expected.policy,
        expected.contra,
    )
    assert [
        (c.gift_id, c.creator_id, c.coins, c.diamonds, c.payable_micros) for c in clawbacks
    ] == clawed_gifts(expected)


def clawed_gifts(chargeback: ModelChargeback) -> list[tuple[int, str, int, int, int]]:
    """(gift, creator, coins, diamonds, payable) of each gift the chargeback clawed back from,
    in the order of the gifts."""
    return sorted(
        (c.spend.id, c.spend.creator, c.coins, c.diamonds, c.payable)
        for c in chargeback.clawbacks
        if isinstance(c.spend, ModelGift)
    )
