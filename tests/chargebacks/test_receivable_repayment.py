"""A receivable repaid from a later purchase, first (COINBOOKS_RECEIVABLE_POLICY=repay_first).

The debt, as in test_receivables.py: Mallory buys 1,000 custom coins for $14.30 (1,000 × $0.0143)
with a stolen card and gifts 300 of them to Shady; the gift leaves its hold, so Shady keeps the
diamonds. The charge is disputed: the 700 coins she holds come back, and the 300 she spent cost
$14.30 × 300 / 1,000 = $4.29, booked to her: ``user:mallory:receivable`` = 4,290,000 micro-USD.
Her wallet is then empty (0 coins, $0 of value). The chargeback froze her account; support
thaws it when she agrees to repay, and she buys again.

A later purchase of N coins worth V (functional currency) repays min(owed, V) first and grants
⌊N × (V − repaid) / V⌋ coins: the floor means no coin is granted that was not paid for.

- coins_350 for $4.99 (V = 4,990,000): repaid 4,290,000, granted ⌊350 × 700,000 / 4,990,000⌋
  = ⌊49.098…⌋ = 49 (4,990,000 × 49 = 244,510,000 ≤ 245,000,000 < 249,500,000 = × 50), 301
  withheld; the wallet's value is what is left, 700,000. The card keeps 2.9% + 30¢ of $4.99:
  14.471¢ rounds to 14¢, 44¢ in all, so clearing gains 4,990,000 − 440,000 = 4,550,000.
- coins_70 for $1.09 while she owes $4.29: the debt takes it whole, repaid 1,090,000, no coin
  granted; she still owes 3,200,000. Then coins_350: repaid 3,200,000, granted
  ⌊350 × 1,790,000 / 4,990,000⌋ = ⌊125.55…⌋ = 125 (× 125 = 623,750,000 ≤ 626,500,000 <
  628,740,000 = × 126).
- coins_350 for ¥800 at the seeded 0.0067 USD per yen: V = 800 × 0.0067 = $5.36 = 5,360,000;
  repaid 4,290,000, granted ⌊350 × 1,070,000 / 5,360,000⌋ = ⌊69.869…⌋ = 69 (× 69 = 369,840,000
  ≤ 374,500,000 < 375,200,000 = × 70). The yen stay yen: clearing gains ¥800 less the card's
  2.9% + ¥40 (23.2 rounds to 23, ¥63), and the trading accounts carry ¥800 → $5.36.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackClaim, ChargebackKind, Outcome, charge_back
from accounting.chargebacks.tables import ChargebackRow
from accounting.ledger import balances
from accounting.ledger.posting import in_transaction
from accounting.ledger.tables import AccountRow, JournalEntryRow
from accounting.policy import standing
from accounting.purchases.payments.sandbox import SandboxGateway
from accounting.purchases.repayment import ReceivablePolicy
from accounting.purchases.service import PurchaseRequest, PurchaseResult, PurchaseService
from accounting.purchases.tables import PurchaseRow
from accounting.reads import financials
from accounting.refunds.service import RefundPolicy, RefundRequest, refund_purchase
from api.database import libpq_url, purchase_service
from api.settings import Settings
from tests.chargebacks.test_chargeback_tracing import integrity_violations, take_back
from tests.chargebacks.test_receivables import RECEIVABLE, balance, mallory_owes
from tests.conftest import GraphQLClient, race
from tests.ledger.test_database_invariants import corrupt

OWED = 4_290_000


@pytest.fixture
async def raw(db_url: URL) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own that knows nothing of the Python ledger."""
    connection = await asyncpg.connect(libpq_url(db_url))
    try:
        yield connection
    finally:
        await connection.close()


async def mallory_owes_and_may_buy(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> int:
    owed = await mallory_owes(sessions, purchases)
    await in_transaction(
        sessions,
        lambda s: standing.set_frozen(
            s, "mallory", frozen=False, reason="agreed to repay", actor="user:support"
        ),
    )
    return owed


def package(code: str, key: str | None = None, currency: str = "USD") -> PurchaseRequest:
    return PurchaseRequest(
        "mallory",
        key or uuid.uuid4().hex,
        currency,
        "web",
        "card",
        "tok_success",
        package_code=code,
    )


async def buy(purchases: PurchaseService, code: str, currency: str = "USD") -> PurchaseRow:
    result = await purchases.purchase_coins(package(code, currency=currency))
    assert result.purchase.status == "completed"
    return result.purchase


async def wallet(sessions: async_sessionmaker[AsyncSession]) -> tuple[int, int]:
    async with sessions() as session:
        held = await balances.wallet(session, "mallory", "USD")
    return held.coins, held.coins_value_micros


async def entry_memo(sessions: async_sessionmaker[AsyncSession], entry_id: int | None) -> str:
    async with sessions() as session:
        memo = await session.scalar(
            select(JournalEntryRow.memo).where(JournalEntryRow.id == entry_id)
        )
    return memo or ""


async def test_a_later_purchase_repays_the_receivable_first(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    assert await mallory_owes_and_may_buy(sessions, purchases) == OWED
    assert await wallet(sessions) == (0, 0)
    clearing_before = await balance(sessions, "platform:clearing:card:USD")
    issued_before = await balance(sessions, "platform:coins:issued")

    repaying = await buy(purchases, "coins_350")
    assert (repaying.receivable_repaid_micros, repaying.coins_withheld) == (OWED, 301)
    assert await wallet(sessions) == (49, 700_000)
    assert await balance(sessions, RECEIVABLE) == 0
    assert await balance(sessions, "platform:clearing:card:USD") == clearing_before + 4_550_000
    assert await balance(sessions, "platform:coins:issued") == issued_before + 49
    memo = await entry_memo(sessions, repaying.entry_id)
    assert memo == "49 coins bought through card; 4.29 USD of the receivable repaid"

    # Nothing is owed now: the next purchase grants all it bought, and opens nothing.
    clear = await buy(purchases, "coins_70")
    assert (clear.receivable_repaid_micros, clear.coins_withheld) == (0, 0)
    assert await wallet(sessions) == (49 + 70, 700_000 + 1_090_000)
    assert await integrity_violations(sessions) == []


async def test_a_purchase_the_debt_takes_whole_grants_no_coin(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await mallory_owes_and_may_buy(sessions, purchases)

    taken = await buy(purchases, "coins_70")
    assert (taken.receivable_repaid_micros, taken.coins_withheld) == (1_090_000, 70)
    assert await wallet(sessions) == (0, 0)
    assert await balance(sessions, RECEIVABLE) == OWED - 1_090_000 == 3_200_000
    memo = await entry_memo(sessions, taken.entry_id)
    assert memo == "0 coins bought through card; 1.09 USD of the receivable repaid"

    rest = await buy(purchases, "coins_350")
    assert (rest.receivable_repaid_micros, rest.coins_withheld) == (3_200_000, 350 - 125)
    assert await wallet(sessions) == (125, 1_790_000)
    assert await balance(sessions, RECEIVABLE) == 0
    assert await integrity_violations(sessions) == []


async def test_a_purchase_in_yen_repays_at_its_own_rate(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await mallory_owes_and_may_buy(sessions, purchases)
    fx_usd = await balance(sessions, "platform:fx:USD")
    fx_jpy = await balance(sessions, "platform:fx:JPY")

    yen = await buy(purchases, "coins_350", currency="JPY")
    assert (yen.receivable_repaid_micros, yen.coins_withheld) == (OWED, 350 - 69)
    assert await wallet(sessions) == (69, 5_360_000 - OWED)
    assert await balance(sessions, RECEIVABLE) == 0
    assert await balance(sessions, "platform:clearing:card:JPY") == (800 - 63) * 1_000_000
    assert await balance(sessions, "platform:fx:JPY") == fx_jpy - 800_000_000
    assert await balance(sessions, "platform:fx:USD") == fx_usd + 5_360_000
    assert await integrity_violations(sessions) == []


async def test_six_purchases_at_once_repay_the_debt_once(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Six coins_70 ($1.09) at once, on their own connections, while Mallory owes $4.29. They
    queue on her accounts; each reads what is left under the lock. Whatever the order, three
    repay $1.09 each and grant nothing, one repays the $1.02 left and grants ⌊70 × 70,000 /
    1,090,000⌋ = ⌊4.49…⌋ = 4 coins, two repay nothing and grant 70: $4.29 in all, once."""
    await mallory_owes_and_may_buy(sessions, purchases)

    def attempt() -> Callable[[], Awaitable[PurchaseResult]]:
        request = package("coins_70")
        return lambda: purchases.purchase_coins(request)

    results = await race(attempt() for _ in range(6))
    bought = [r.purchase for r in results if isinstance(r, PurchaseResult)]
    assert len(bought) == 6 and {p.status for p in bought} == {"completed"}
    assert sorted(p.receivable_repaid_micros for p in bought) == [
        0,
        0,
        1_020_000,
        1_090_000,
        1_090_000,
        1_090_000,
    ]
    assert sum(p.receivable_repaid_micros for p in bought) == OWED
    assert sorted(70 - p.coins_withheld for p in bought) == [0, 0, 0, 4, 70, 70]
    assert await balance(sessions, RECEIVABLE) == 0
    assert await wallet(sessions) == (4 + 70 + 70, 6 * 1_090_000 - OWED)
    assert await integrity_violations(sessions) == []


async def test_the_same_key_again_replays_the_repayment(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await mallory_owes_and_may_buy(sessions, purchases)
    request = package("coins_350", key="mallory-pays-back")
    first = await purchases.purchase_coins(request)
    again = await purchases.purchase_coins(request)
    assert again.replayed and not first.replayed
    assert (again.purchase.id, again.purchase.entry_id) == (
        first.purchase.id,
        first.purchase.entry_id,
    )
    assert (again.purchase.receivable_repaid_micros, again.purchase.coins_withheld) == (OWED, 301)
    assert await wallet(sessions) == (49, 700_000)
    assert await balance(sessions, RECEIVABLE) == 0


async def test_policy_none_leaves_the_receivable_alone(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await mallory_owes_and_may_buy(sessions, purchases)
    leaves_it = PurchaseService(
        sessions,
        SandboxGateway(sessions),
        functional_currency="USD",
        unanswered_grace=purchases.unanswered_grace,
        receivable_policy=ReceivablePolicy.NONE,
    )
    bought = await buy(leaves_it, "coins_350")
    assert (bought.receivable_repaid_micros, bought.coins_withheld) == (0, 0)
    assert await wallet(sessions) == (350, 4_990_000)
    assert await balance(sessions, RECEIVABLE) == OWED
    assert await integrity_violations(sessions) == []


async def test_nobody_owing_has_no_receivable_opened(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "ana-first-buy", "USD", "web", "card", "tok_success", package_code="coins_70"
        )
    )
    assert bought.purchase.receivable_repaid_micros == 0
    async with sessions() as session:
        opened = await session.scalar(
            select(AccountRow.id).where(AccountRow.code == "user:ana:receivable")
        )
    assert opened is None


PURCHASE = """
mutation Buy($input: PurchaseCoinsInput!) {
  purchaseCoins(input: $input) {
    purchase { status coins coinsGranted receivableRepaid { amount currency } }
    errors { code }
  }
}
"""


async def test_the_repayment_over_graphql(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    await mallory_owes_and_may_buy(sessions, purchases)

    def buy_input(code: str) -> dict[str, object]:
        return {
            "input": {
                "idempotencyKey": uuid.uuid4().hex,
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": code,
            }
        }

    whole = await gql(PURCHASE, buy_input("coins_70"), user="mallory")
    assert whole["data"]["purchaseCoins"] == {
        "purchase": {
            "status": "COMPLETED",
            "coins": "70",
            "coinsGranted": "0",
            "receivableRepaid": {"amount": "1.09", "currency": "USD"},
        },
        "errors": [],
    }
    rest = await gql(PURCHASE, buy_input("coins_350"), user="mallory")
    assert rest["data"]["purchaseCoins"]["purchase"] == {
        "status": "COMPLETED",
        "coins": "350",
        "coinsGranted": "125",
        "receivableRepaid": {"amount": "3.20", "currency": "USD"},
    }
    clear = await gql(PURCHASE, buy_input("coins_70"), user="mallory")
    assert clear["data"]["purchaseCoins"]["purchase"]["receivableRepaid"] == {
        "amount": "0.00",
        "currency": "USD",
    }


async def test_the_database_and_the_integrity_check_hold_the_repayment(
    raw: asyncpg.Connection,
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
) -> None:
    """A purchase cannot record a repayment it did not complete, nor a negative one; a purchase
    row edited behind the triggers' back to say it repaid a cent more than its entry did, or to
    withhold a coin fewer, is named by the integrity check."""
    await mallory_owes_and_may_buy(sessions, purchases)
    repaying = await buy(purchases, "coins_350")
    pending = await purchases.purchase_coins(
        PurchaseRequest(
            "ana", "ana-on-a-train", "USD", "web", "card", "tok_timeout", package_code="coins_70"
        )
    )
    assert pending.purchase.status == "pending"
    for forged in ("receivable_repaid_micros = 1", "coins_withheld = 1"):
        with pytest.raises(asyncpg.CheckViolationError):
            await raw.execute(f"UPDATE purchase SET {forged} WHERE id = $1", pending.purchase.id)
    with pytest.raises(asyncpg.RestrictViolationError):
        await raw.execute(
            "UPDATE purchase SET receivable_repaid_micros = 0 WHERE id = $1", repaying.id
        )

    await corrupt(
        raw,
        "purchase",
        "UPDATE purchase SET receivable_repaid_micros = receivable_repaid_micros + 10000,"
        " coins_withheld = coins_withheld - 1 WHERE id = $1",
        repaying.id,
    )
    assert await integrity_violations(sessions) == [
        f"purchase_granted_what_was_bought: purchase {repaying.id} bought 350 coins and"
        f" withheld 300 for its receivable, its entry granted 49",
        f"purchase_repaid_what_it_says: purchase {repaying.id} says it repaid 4300000 and"
        f" withheld 300 of 350 coins; its entry repaid 4290000 of a value of 4990000,"
        f" which withholds 301",
    ]


async def test_a_refund_of_a_repaying_purchase_owes_the_debt_again(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Support refunds the coins_350 that repaid $4.29 and granted 49 coins: the 49 coins and
    their $0.70 of value leave the wallet, the card gets all $4.99 back, and the $4.29 it repaid
    is owed again (the refund undoes the repayment, not only the coins). Contra revenue is
    what was paid into the wallet less what its average released: 700,000 − 700,000 = 0."""
    await mallory_owes_and_may_buy(sessions, purchases)
    repaying = await buy(purchases, "coins_350")
    clearing = await balance(sessions, "platform:clearing:card:USD")

    refunded = await refund_purchase(
        sessions,
        RefundRequest(repaying.id, "refund-mallory-1", "user:support", "changed her mind"),
        policy=RefundPolicy(),
        functional_currency="USD",
    )
    assert (refunded.refund.coins, refunded.refund.contra_revenue_micros) == (49, 0)
    assert await wallet(sessions) == (0, 0)
    assert await balance(sessions, RECEIVABLE) == OWED
    assert await balance(sessions, "platform:clearing:card:USD") == clearing - 4_990_000
    assert await integrity_violations(sessions) == []


async def test_a_chargeback_of_a_repaying_purchase_owes_the_debt_again(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The coins_70 the debt took whole (no coin, $1.09 repaid) and then the coins_350 that
    repaid the other $3.20 and granted 125 coins are both disputed. The first takes back its
    $1.09 and owes it again; the second claws back the 125 coins still held with their
    $1.79 of value and owes the $3.20 again: Mallory owes $4.29 once more, her wallet empty."""
    await mallory_owes_and_may_buy(sessions, purchases)
    taken = await buy(purchases, "coins_70")
    rest = await buy(purchases, "coins_350")
    assert await balance(sessions, RECEIVABLE) == 0

    whole = await take_back(sessions, taken.id)
    assert (whole.coins_clawed, whole.value_paid_micros) == (0, 0)
    assert await balance(sessions, RECEIVABLE) == 1_090_000
    part = await take_back(sessions, rest.id)
    assert (part.coins_clawed, part.value_paid_micros) == (125, 1_790_000)
    assert await balance(sessions, RECEIVABLE) == OWED
    assert await wallet(sessions) == (0, 0)
    assert await integrity_violations(sessions) == []


async def test_a_repaying_purchase_taken_back_in_two_pieces_owes_exactly_what_it_repaid(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """The coins_350 that repaid $4.29 and granted 49 coins (wallet $0.70) is refunded at the
    card's dashboard in two pieces, 250¢ then 249¢ of its 499¢. Each piece takes the ceiling of
    its running share (partial_share): of the 49 coins ⌈49 × 250 / 499⌉ = ⌈24.55⌉ = 25, of the
    wallet's $0.70 ⌈700,000 × 250 / 499⌉ = ⌈350,701.4⌉ = 350,702, and of the whole $4.99
    exactly 2,500,000, so 2,500,000 − 350,702 = 2,149,298 is owed again. The second piece takes
    the rest: 24 coins, 349,298, and 4,290,000 − 2,149,298 = 2,140,702 owed again."""
    await mallory_owes_and_may_buy(sessions, purchases)
    repaying = await buy(purchases, "coins_350")

    async def piece(case: str, cents: int) -> ChargebackRow:
        claim = ChargebackClaim(
            repaying.id,
            ChargebackKind.PROVIDER_REFUND,
            case,
            "refunded at the dashboard",
            "provider:card",
            amount_minor=cents,
            currency="USD",
        )
        result = await in_transaction(
            sessions,
            lambda s: charge_back(
                s, claim, functional_currency="USD", loss_policy=LossPolicy.RECEIVABLE
            ),
        )
        assert result.outcome is Outcome.CHARGED_BACK and result.chargeback is not None
        return result.chargeback

    first = await piece("re_1", 250)
    assert (first.coins_clawed, first.value_paid_micros) == (25, 350_702)
    assert await balance(sessions, RECEIVABLE) == 2_149_298
    second = await piece("re_2", 249)
    assert (second.coins_clawed, second.value_paid_micros) == (24, 349_298)
    assert await balance(sessions, RECEIVABLE) == 2_149_298 + 2_140_702 == OWED
    assert await wallet(sessions) == (0, 0)
    assert await integrity_violations(sessions) == []


def test_the_policy_is_a_setting(
    monkeypatch: pytest.MonkeyPatch, sessions: async_sessionmaker[AsyncSession]
) -> None:
    monkeypatch.delenv("COINBOOKS_RECEIVABLE_POLICY", raising=False)
    assert Settings(_env_file=None).receivable_policy is ReceivablePolicy.REPAY_FIRST  # type: ignore[call-arg]
    monkeypatch.setenv("COINBOOKS_RECEIVABLE_POLICY", "none")
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    assert purchase_service(configured, sessions).receivable_policy is ReceivablePolicy.NONE
    monkeypatch.setenv("COINBOOKS_RECEIVABLE_POLICY", "sometimes")
    with pytest.raises(ValidationError, match="receivable_policy"):
        Settings(_env_file=None)  # type: ignore[call-arg]


async def test_the_roll_forwards_explain_a_repayment(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService
) -> None:
    """Over the repaying coins_350 alone, deferred revenue rolls forward by its Purchases line,
    $0.70 (the $4.99 less the $4.29 repaid), and coins outstanding by its Purchased line, the
    49 coins granted; neither leaves anything unexplained."""
    await mallory_owes_and_may_buy(sessions, purchases)
    async with sessions() as session:
        start = await session.scalar(select(func.clock_timestamp()))
    await buy(purchases, "coins_350")
    async with sessions() as session:
        end = await session.scalar(select(func.clock_timestamp()))
        assert start is not None and end is not None
        rolled = {r.code: r for r in await financials.roll_forwards(session, "USD", start, end)}
    deferred, coins = rolled["deferred_revenue"], rolled["coins_outstanding"]
    assert (deferred.closing - deferred.opening, deferred.not_explained) == (700_000, 0)
    assert {line.code: line.amount for line in deferred.lines}["purchases"] == 700_000
    assert (coins.closing - coins.opening, coins.not_explained) == (49, 0)
    assert {line.code: line.amount for line in coins.lines}["purchased"] == 49
