"""Partial disputes and partial provider refunds: a provider takes back part of a purchase's
price, and the same share of its coins comes back (docs/accounting.md, "Chargebacks").

The share is rounded against the buyer, on the running total (``partial_share``): a takeback of
A of a price of G minor units claws back ⌈coins × A / G⌉ coins, and the value paid for them
likewise; the whole price claws back every coin, exactly as a full chargeback does. Of those
coins the wallet gives back what it holds; the rest are traced to what they bought, and the
diamonds they funded that are still pending come back with their payable.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.tables import (
    ChargebackClawbackRow,
    ChargebackRow,
    ChargebackTraceRow,
    ProviderEventRow,
)
from accounting.gifts.posting import GiftRequest
from accounting.gifts.service import GiftService
from accounting.gifts.streams import start_stream
from accounting.ledger import balances
from accounting.ledger.balances import creator_balances
from accounting.ledger.posting import entry_postings, in_transaction
from accounting.ledger.tables import JournalEntryRow
from accounting.purchases.service import PurchaseRequest, PurchaseService
from accounting.purchases.tables import CoinPackageRow, PackagePriceRow
from accounting.reads import financials
from tests.chargebacks.deliveries import deliver, dispute, provider_refund, reference_of, row_id
from tests.chargebacks.test_chargeback_tracing import integrity_violations
from tests.chargebacks.test_webhooks import PRICE_350, books_ok, coins_of, count
from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_refunds import buy

WEEK = timedelta(days=7)


async def event_of(sessions: async_sessionmaker[AsyncSession]) -> ProviderEventRow:
    async with sessions() as session:
        row = await session.scalar(select(ProviderEventRow).order_by(ProviderEventRow.id.desc()))
    assert row is not None
    return row


async def test_a_partial_dispute_of_mallorys_999_purchase_claws_back_its_share_to_the_unit(
    sessions: async_sessionmaker[AsyncSession],
    purchases: PurchaseService,
    client: httpx.AsyncClient,
) -> None:
    """Mallory buys 2,000 coins for $9.99 with a card: her wallet holds 2,000 coins worth
    9,990,000 micro-USD. She sends Bo 1,200 roses (one coin each) while Bo's gifts are in a
    week's hold: the weighted average releases 9,990,000 × 1,200 / 2,000 = 5,994,000; Bo
    earns 1,200 pending diamonds and 1,200 × 5,000 = 6,000,000 payable (the 6,000 shortfall is
    promotions). Mallory keeps 800 coins worth 3,996,000.

    The card network reports a dispute of $5.00 (500 of 999 cents) with a $15.00 fee. The
    share of the purchase it takes back, rounded against Mallory on the running total:
    coins ⌈2,000 × 500 / 999⌉ = ⌈1,001.001⌉ = 1,002; value ⌈9,990,000 × 500 / 999⌉ =
    5,000,000 exactly. Of the 1,002 coins her wallet holds 800: they come back with all
    their 3,996,000 value. The other 202 were spent: traced to the roses, whose share is
    ⌊1,200 × 202 / 1,200⌋ = 202 diamonds, still pending, and ⌊6,000,000 × 202 / 1,200⌋ =
    1,010,000 payable, both clawed back from Bo. What the 202 spent coins cost at the
    share's price, round(5,000,000 × 202 / 1,002) = 1,007,984, is covered by the payable
    clawed back: no loss. The rest balances the entry as chargebacks' contra revenue:
    5,000,000 − 3,996,000 − 1,010,000 = −6,000. Cash: 5,000,000 leaves card clearing, and
    the $15.00 fee, 15,000,000 more (dispute fees).

    Mallory ends with 0 coins and 0 value; Bo with 1,200 − 202 = 998 pending diamonds and
    6,000,000 − 1,010,000 = 4,990,000 payable. The integrity check finds nothing and the
    roll-forwards explain every movement."""
    async with sessions() as session, session.begin():
        start = await financials.now(session)
        package = CoinPackageRow(code="coins_2000", coins=2_000)
        session.add(package)
        await session.flush()
        session.add(
            PackagePriceRow(package_id=package.id, channel="web", currency="USD", price_minor=999)
        )
    bought = await purchases.purchase_coins(
        PurchaseRequest(
            "mallory",
            uuid.uuid4().hex,
            "USD",
            "web",
            "card",
            "tok_success",
            package_code="coins_2000",
        )
    )
    assert bought.purchase.status == "completed"
    stream = await in_transaction(sessions, lambda s: start_stream(s, "bo", "live"))
    await GiftService(sessions, hold=WEEK).send_gift(
        GiftRequest("mallory", uuid.uuid4().hex, stream.id, "rose", 1_200)
    )
    async with sessions() as session:
        wallet = await balances.wallet(session, "mallory", "USD")
        clearing_before = await balances.account_balance(session, "platform:clearing:card:USD")
    assert (wallet.coins, wallet.coins_value_micros) == (800, 3_996_000)
    assert clearing_before is not None

    reference = await reference_of(sessions, bought.purchase.id)
    reply = await deliver(client, "card", dispute(reference, amount=500, fee=1_500))

    assert reply.json()["outcome"] == "charged_back", reply.text
    assert (await event_of(sessions)).detail == (
        "5.00 USD taken back: 800 coins and 202 pending diamonds clawed back; "
        "0.00 USD booked to receivable"
    )
    async with sessions() as session:
        chargeback = await session.scalar(select(ChargebackRow))
        assert chargeback is not None
        traces = (await session.scalars(select(ChargebackTraceRow))).all()
        clawbacks = (await session.scalars(select(ChargebackClawbackRow))).all()
        postings = {
            p.account.code: p.amount for p in await entry_postings(session, chargeback.entry_id)
        }
        wallet = await balances.wallet(session, "mallory", "USD")
        bo = await creator_balances(session, "bo", "USD")
        clearing = await balances.account_balance(session, "platform:clearing:card:USD")
        end = await financials.now(session) + timedelta(seconds=1)
        rolled = await financials.roll_forwards(session, "USD", start, end)
    assert (
        chargeback.cash_minor,
        chargeback.value_paid_micros,
        chargeback.coins_clawed,
        chargeback.coins_spent,
        chargeback.value_released_micros,
        chargeback.diamonds_clawed,
        chargeback.payable_clawed_micros,
        chargeback.loss_micros,
        chargeback.contra_revenue_micros,
    ) == (500, 5_000_000, 800, 202, 3_996_000, 202, 1_010_000, 0, -6_000)
    assert [(t.spending, t.coins) for t in traces] == [("gift", 202)]
    assert [(c.creator_id, c.coins, c.diamonds, c.payable_micros) for c in clawbacks] == [
        ("bo", 202, 202, 1_010_000)
    ]
    assert postings == {
        "platform:clearing:card:USD": -5_000_000,
        "user:mallory:coins": 800,
        "platform:coins:issued": -800,
        "user:mallory:coins_value": 3_996_000,
        "creator:bo:diamonds:pending": 202,
        "platform:diamonds:issued": -202,
        "creator:bo:payable": 1_010_000,
        "platform:contra_revenue:chargebacks": -6_000,
    }
    assert (wallet.coins, wallet.coins_value_micros) == (0, 0)
    assert (bo.diamonds_pending, bo.payable_micros) == (998, 4_990_000)
    assert clearing is not None
    assert clearing_before.balance - clearing.balance == 5_000_000 + 15_000_000
    assert await integrity_violations(sessions) == []
    lines = {(r.code, line.code): line.amount for r in rolled for line in r.lines}
    assert [r.not_explained for r in rolled] == [0, 0, 0, 0]
    assert lines[("deferred_revenue", "chargebacks")] == -3_996_000
    assert lines[("creator_payable", "clawed_back")] == -1_010_000
    assert lines[("coins_outstanding", "charged_back")] == -800
    assert lines[("diamonds_outstanding", "clawed_back")] == -202


async def test_a_dispute_for_part_of_the_price_is_a_partial_chargeback_not_an_amount_mismatch(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 350 coins for $4.99 and disputes $1.00 of it: ⌈350 × 100 / 499⌉ = ⌈70.14⌉ =
    71 coins come back from her wallet, with her weighted average for them,
    round(4,990,000 × 71 / 350) = 1,012,257; the share of the value paid is 4,990,000 × 100 /
    499 = 1,000,000, so chargeback contra revenue is 1,000,000 − 1,012,257 = −12,257. She
    keeps 279 coins worth 3,977,743."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)

    reply = await deliver(client, "card", dispute(reference, amount=100))

    assert reply.json()["outcome"] == "charged_back", reply.text
    assert await coins_of(gql, "ana") == "279"
    async with sessions() as session:
        chargeback = await session.scalar(select(ChargebackRow))
        wallet = await balances.wallet(session, "ana", "USD")
    assert chargeback is not None
    assert (
        chargeback.cash_minor,
        chargeback.value_paid_micros,
        chargeback.coins_clawed,
        chargeback.value_released_micros,
        chargeback.contra_revenue_micros,
    ) == (100, 1_000_000, 71, 1_012_257, -12_257)
    assert wallet.coins_value_micros == 3_977_743
    await books_ok(gql)


async def test_a_partial_refund_at_the_provider_claws_back_its_share(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The card network refunds $2.50 of Ana's $4.99 at its own dashboard: ⌈350 × 250 / 499⌉
    = ⌈175.35⌉ = 176 coins come back; she keeps 174."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)

    reply = await deliver(client, "card", provider_refund(reference, amount=250))

    assert reply.json()["outcome"] == "charged_back", reply.text
    assert await coins_of(gql, "ana") == "174"
    async with sessions() as session:
        chargeback = await session.scalar(select(ChargebackRow))
    assert chargeback is not None
    assert (chargeback.kind, chargeback.cash_minor, chargeback.coins_clawed) == (
        "provider_refund",
        250,
        176,
    )
    await books_ok(gql)


async def test_refunds_at_the_provider_in_pieces_take_back_every_coin_and_no_more(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The card network refunds Ana's $4.99 purchase in two pieces. Its ``charge.refunded``
    names all it refunded so far: first $2.50, then $4.99 (the second refund is $2.49). On
    the running total the first takes ⌈350 × 250 / 499⌉ = 176 coins, the second
    ⌈350 × 499 / 499⌉ − 176 = 174: all 350 between them, each a chargeback with its own entry
    (``chargeback:<purchase>``, then ``chargeback:<purchase>:2``). The value taken back adds
    up likewise: ⌈4,990,000 × 250 / 499⌉ = 2,500,000, then 4,990,000 − 2,500,000 = 2,490,000.
    Once nothing is left of the price, the same report delivered anew and a dispute take
    nothing more."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)

    first = await deliver(client, "card", provider_refund(reference, amount=250))
    second = await deliver(client, "card", provider_refund(reference, amount=PRICE_350))
    again = await deliver(client, "card", provider_refund(reference, amount=PRICE_350))
    disputed = await deliver(client, "card", dispute(reference, amount=100))

    assert [r.json()["outcome"] for r in (first, second, again, disputed)] == [
        "charged_back",
        "charged_back",
        "already_charged_back",
        "already_charged_back",
    ]
    assert await coins_of(gql, "ana") == "0"
    async with sessions() as session:
        rows = (await session.scalars(select(ChargebackRow).order_by(ChargebackRow.id))).all()
        keys = [
            await session.scalar(
                select(JournalEntryRow.event_key).where(JournalEntryRow.id == row.entry_id)
            )
            for row in rows
        ]
    assert [(r.cash_minor, r.coins_clawed, r.value_paid_micros) for r in rows] == [
        (250, 176, 2_500_000),
        (249, 174, 2_490_000),
    ]
    row = row_id(purchase)
    assert keys == [f"chargeback:{row}", f"chargeback:{row}:2"]
    assert await integrity_violations(sessions) == []
    await books_ok(gql)


async def test_a_piece_beyond_what_is_left_of_the_price_is_refused(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """$2.50 of Ana's $4.99 was refunded at the provider; a dispute of $3.00 asks for more
    than the $2.49 left: refused, nothing posted; a dispute of the $2.49 left is taken."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    await deliver(client, "card", provider_refund(reference, amount=250))
    before = await count(sessions, JournalEntryRow)

    refused = await deliver(client, "card", dispute(reference, amount=300, dispute_id="dp_9"))
    taken = await deliver(client, "card", dispute(reference, amount=249, dispute_id="dp_9"))

    assert refused.json()["outcome"] == "refused", refused.text
    assert taken.json()["outcome"] == "charged_back", taken.text
    assert await count(sessions, JournalEntryRow) == before + 1
    assert await coins_of(gql, "ana") == "0"
    await books_ok(gql)


async def test_a_takeback_beyond_the_price_is_refused_in_the_currencys_unit_and_posts_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A dispute of $5.00 on a $4.99 purchase asks for more than there is: refused with its
    code, the amounts written in dollars, nothing posted (not even the dispute's fee)."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    before = await count(sessions, JournalEntryRow)

    reply = await deliver(client, "card", dispute(reference, amount=PRICE_350 + 1, fee=1_500))

    assert reply.json()["outcome"] == "refused", reply.text
    assert (await event_of(sessions)).detail == (
        "CHARGEBACK_EXCEEDS_PURCHASE: The provider takes back 5.00 USD of purchase "
        f"{row_id(purchase)}: 4.99 USD of its price of 4.99 USD is left"
    )
    assert await count(sessions, JournalEntryRow) == before
    assert await count(sessions, ChargebackRow) == 0
    await books_ok(gql)


async def test_a_takeback_in_another_currency_is_left_for_finance_in_each_currencys_unit(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A dispute of EUR 4.99 on a purchase paid in dollars is not ours to convert: recorded as
    ``amount_mismatch`` for finance, each amount in its currency's unit, nothing posted."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    before = await books_ok(gql)

    reply = await deliver(client, "card", dispute(reference, amount=PRICE_350, currency="eur"))

    assert reply.json()["outcome"] == "amount_mismatch", reply.text
    assert (await event_of(sessions)).detail == (
        f"The provider takes back 4.99 EUR; purchase {row_id(purchase)} was 4.99 USD"
    )
    assert await books_ok(gql) == before


async def test_a_piece_disputed_and_won_is_undone_and_the_other_piece_stands(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """$2.50 of Ana's $4.99 is refunded at the provider (176 coins back: she keeps 174); she
    disputes the $2.49 left (the other 174 coins), and the platform wins the dispute: its
    entry, ``chargeback:<purchase>:2``, is undone by ``chargeback:<purchase>:won`` and her
    174 coins come back; the refund's piece stands."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    await deliver(client, "card", provider_refund(reference, amount=250))
    opened = await deliver(client, "card", dispute(reference, amount=249, dispute_id="dp_7"))
    assert opened.json()["outcome"] == "charged_back", opened.text
    assert await coins_of(gql, "ana") == "0"

    won = await deliver(
        client, "card", dispute(reference, amount=249, status="won", closed=True,
                                dispute_id="dp_7")
    )  # fmt: skip

    assert won.json()["outcome"] == "dispute_won", won.text
    assert await coins_of(gql, "ana") == "174"
    async with sessions() as session:
        statuses = (
            await session.execute(
                select(ChargebackRow.kind, ChargebackRow.status).order_by(ChargebackRow.id)
            )
        ).all()
        won_key = await session.scalar(
            select(JournalEntryRow.event_key).where(JournalEntryRow.kind == "chargeback_won")
        )
    assert [tuple(s) for s in statuses] == [("provider_refund", "final"), ("dispute", "won")]
    assert won_key == f"chargeback:{row_id(purchase)}:won"
    await books_ok(gql)


async def test_the_integrity_check_finds_chargebacks_taking_back_more_than_the_price(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana's $4.99 is refunded whole at the provider; a second chargeback of the whole price,
    written by hand, takes back $9.98 of it between them: the check names the purchase."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    await deliver(client, "card", provider_refund(reference, amount=PRICE_350))
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO chargeback (purchase_id, user_id, provider, kind, case_id, entry_id,"
                " currency, cash_minor, value_paid_micros, coins_clawed, coins_spent,"
                " value_released_micros, diamonds_clawed, payable_clawed_micros, loss_micros,"
                " loss_booked_to, contra_revenue_micros, status, created_at)"
                " SELECT p.id, p.user_id, p.provider, 'voided', 'forged', p.entry_id,"
                " p.currency, p.price_minor, 0, 0, 0, 0, 0, 0, 0, 'receivable', 0, 'final',"
                " now() FROM purchase p WHERE p.id = :id"
            ),
            {"id": row_id(purchase)},
        )
    violations = await integrity_violations(sessions)
    assert (
        f"chargeback_posted_once: purchase {row_id(purchase)} of 499 minor units of USD:"
        " its chargebacks took back 998"
    ) in violations, violations


async def test_two_partial_refunds_racing_take_back_the_price_once_in_either_order(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The provider's reports of $2.50 refunded, then $4.99 refunded in all, arrive at the same
    moment on two connections. They queue on the purchase: if the $4.99 comes first it takes
    the whole price and the $2.50 adds nothing (``already_charged_back``); otherwise they take
    $2.50 and $2.49. Either way $4.99 and all 350 coins come back, once."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)

    answers = await asyncio.gather(
        deliver(client, "card", provider_refund(reference, amount=250)),
        deliver(client, "card", provider_refund(reference, amount=PRICE_350)),
    )

    outcomes = sorted(answer.json()["outcome"] for answer in answers)
    async with sessions() as session:
        taken = (await session.scalars(select(ChargebackRow.cash_minor))).all()
    assert sum(taken) == PRICE_350, (outcomes, taken)
    assert outcomes in (["charged_back", "charged_back"], ["already_charged_back", "charged_back"])
    assert await coins_of(gql, "ana") == "0"
    await books_ok(gql)
