"""Provider webhooks over HTTP: signed events from card processors and app stores take a
purchase back (a chargeback), each exactly once; anything unsigned, wrongly signed, stale, from
an unknown provider or unreadable is refused, recorded, and changes nothing."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.tables import ChargebackRow, ProviderEventRow, WebhookRefusalRow
from accounting.ledger.tables import JournalEntryRow
from tests.chargebacks.deliveries import (
    apple_refund,
    deliver,
    dispute,
    google_voided,
    provider_refund,
    reference_of,
    row_id,
)
from tests.conftest import GraphQLClient
from tests.graphql.test_graphql_refunds import BOOKS, buy, check, codes

REFUND = """
mutation Refund($input: RefundPurchaseInput!) {
  refundPurchase(input: $input) { errors { code } }
}
"""
WALLET = "query W($u: String) { wallet(userId: $u) { coins coinsValue { amount } } }"
ACCOUNT = """
query A($code: String!) { accountBalance(code: $code) { balance } }
"""

PRICE_350 = 499  # coins_350 on the web, in cents


async def count(sessions: async_sessionmaker[AsyncSession], table: type[Any]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def books_ok(gql: GraphQLClient) -> dict[str, Any]:
    report: dict[str, Any] = (await gql(BOOKS, user="fin", roles=("finance",)))["data"][
        "integrityReport"
    ]
    assert report["ok"] is True, report
    return report


async def balance(gql: GraphQLClient, code: str) -> int:
    """The account's balance in its natural reading, in micro-units for money."""
    reply = await gql(ACCOUNT, {"code": code}, user="fin", roles=("finance",))
    assert "errors" not in reply, reply
    return int(reply["data"]["accountBalance"]["balance"])


async def coins_of(gql: GraphQLClient, user: str) -> str:
    reply = await gql(WALLET, {"u": user}, user="sup", roles=("support",))
    assert "errors" not in reply, reply
    coins: str = reply["data"]["wallet"]["coins"]
    return coins


# Refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no signature", 401, "MISSING_SIGNATURE"),
        ("garbled signature", 401, "MISSING_SIGNATURE"),
        ("another secret", 401, "BAD_SIGNATURE"),
        ("body changed after signing", 401, "BAD_SIGNATURE"),
        ("signed ten minutes ago", 401, "STALE_TIMESTAMP"),
        ("signed ten minutes ahead", 401, "STALE_TIMESTAMP"),
        ("unknown provider", 404, "UNKNOWN_PROVIDER"),
        ("not JSON", 400, "MALFORMED_EVENT"),
        ("dispute without an amount", 400, "MALFORMED_EVENT"),
    ],
)
async def test_a_delivery_that_cannot_be_trusted_is_refused_recorded_and_changes_nothing(
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    case: str,
    status: int,
    code: str,
) -> None:
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    event = dispute(reference, amount=PRICE_350)
    before = await books_ok(gql)
    now = int(time.time())
    if case == "no signature":
        response = await deliver(client, "card", event, signature="")
    elif case == "garbled signature":
        response = await deliver(client, "card", event, signature="sha256=abc")
    elif case == "another secret":
        response = await deliver(client, "card", event, key="whsec_someone_else")
    elif case == "body changed after signing":
        signed = await deliver(client, "card", {**event, "id": "evt_probe"}, signature="")
        assert signed.status_code == 401
        from accounting.chargebacks.provider_events import sign
        from tests.chargebacks.deliveries import secret

        header = sign(secret("card"), now, b'{"id": "evt_original"}')
        response = await deliver(client, "card", event, signature=header)
    elif case == "signed ten minutes ago":
        response = await deliver(client, "card", event, at=now - 600)
    elif case == "signed ten minutes ahead":
        response = await deliver(client, "card", event, at=now + 600)
    elif case == "unknown provider":
        response = await deliver(client, "bitcoin", event)
    elif case == "not JSON":
        from accounting.chargebacks.provider_events import sign
        from tests.chargebacks.deliveries import secret

        body = b"<xml>dispute</xml>"
        response = await client.post(
            "/webhooks/card",
            content=body,
            headers={"coinbooks-signature": sign(secret("card"), now, body)},
        )
    else:
        del event["data"]["object"]["amount"]
        response = await deliver(client, "card", event)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    async with sessions() as session:
        counted = select(WebhookRefusalRow.reason).order_by(WebhookRefusalRow.id)
        reasons = (await session.scalars(counted)).all()
    assert reasons[-1] == code
    assert await count(sessions, ProviderEventRow) == 0
    assert await count(sessions, ChargebackRow) == 0
    assert await books_ok(gql) == before
    assert await coins_of(gql, "ana") == "350"


async def test_only_post_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.get("/webhooks/card")
    assert response.status_code == 405


# Card disputes -----------------------------------------------------------------------------


async def test_a_card_dispute_claws_the_coins_back_books_the_fee_and_freezes_the_buyer(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Ana buys 350 coins for $4.99 by card and spends none. Her bank opens a dispute ($15 fee):
    the 350 coins go back, the $4.99 and the $15 fee leave card clearing, and Ana may no longer
    buy or gift. The refund check now says CHARGED_BACK."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    clearing = await balance(gql, "platform:clearing:card:USD")
    response = await deliver(client, "card", dispute(reference, amount=PRICE_350, fee=1500))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["outcome"] == "charged_back" and answer["duplicate"] is False
    assert answer["purchaseId"] == row_id(purchase)
    assert await coins_of(gql, "ana") == "0"
    assert await balance(gql, "platform:clearing:card:USD") == clearing - 4_990_000 - 15_000_000
    assert await balance(gql, "platform:expense:dispute_fees:USD") == 15_000_000
    await books_ok(gql)
    found = await check(gql, purchase)
    assert "CHARGED_BACK" in codes(found) and "ACCOUNT_FROZEN" in codes(found)
    again = await gql(
        """mutation B($input: PurchaseCoinsInput!) {
             purchaseCoins(input: $input) { errors { code } } }""",
        {
            "input": {
                "idempotencyKey": "after-dispute-1",
                "currency": "USD",
                "channel": "WEB",
                "provider": "CARD",
                "paymentToken": "tok_success",
                "packageCode": "coins_350",
            }
        },
        user="ana",
    )
    assert again["data"]["purchaseCoins"]["errors"] == [{"code": "ACCOUNT_FROZEN"}]


async def test_a_dispute_won_gives_everything_back_but_the_fee_and_lost_changes_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await buy(gql), await buy(gql, user="bo")
    ref_first = await reference_of(sessions, first)
    ref_second = await reference_of(sessions, second)
    for ref, case in ((ref_first, "dp_a"), (ref_second, "dp_b")):
        opened = await deliver(client, "card", dispute(ref, amount=PRICE_350, fee=1500,
                                                       dispute_id=case))  # fmt: skip
        assert opened.json()["outcome"] == "charged_back"
    won = await deliver(
        client, "card", dispute(ref_first, amount=PRICE_350, status="won", closed=True,
                                dispute_id="dp_a")
    )  # fmt: skip
    assert won.json()["outcome"] == "dispute_won", won.text
    lost = await deliver(
        client, "card", dispute(ref_second, amount=PRICE_350, status="lost", closed=True,
                                dispute_id="dp_b")
    )  # fmt: skip
    assert lost.json()["outcome"] == "dispute_lost", lost.text
    assert await coins_of(gql, "ana") == "350"
    assert await coins_of(gql, "bo") == "0"
    assert await balance(gql, "platform:expense:dispute_fees:USD") == 30_000_000
    async with sessions() as session:
        statuses = dict(
            (await session.execute(select(ChargebackRow.case_id, ChargebackRow.status))).all()
        )
    assert statuses == {"dp_a": "won", "dp_b": "lost"}
    again = await deliver(
        client, "card", dispute(ref_first, amount=PRICE_350, status="lost", closed=True,
                                dispute_id="dp_a")
    )  # fmt: skip
    assert again.json()["outcome"] == "already_resolved"
    await books_ok(gql)


async def test_an_event_for_a_charge_we_do_not_know_is_recorded_and_posts_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await deliver(client, "card", dispute("ch_unknown", amount=PRICE_350))
    assert response.json()["outcome"] == "unknown_purchase"
    assert await count(sessions, JournalEntryRow) == 0


# App stores and provider refunds -----------------------------------------------------------


async def test_an_apple_refund_and_a_google_void_take_the_purchase_back(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    on_ios = await buy(gql, user="ana", channel="IOS", provider="APPLE")
    on_android = await buy(gql, user="bo", channel="ANDROID", provider="GOOGLE")
    apple = await deliver(client, "apple", apple_refund(await reference_of(sessions, on_ios)))
    google = await deliver(
        client, "google", google_voided(await reference_of(sessions, on_android), reason=6)
    )
    assert apple.json()["outcome"] == "charged_back", apple.text
    assert google.json()["outcome"] == "charged_back", google.text
    assert await coins_of(gql, "ana") == "0" and await coins_of(gql, "bo") == "0"
    async with sessions() as session:
        kinds = dict(
            (await session.execute(select(ChargebackRow.user_id, ChargebackRow.kind))).all()
        )
        reason = await session.scalar(
            select(ChargebackRow.reason).where(ChargebackRow.user_id == "bo")
        )
    assert kinds == {"ana": "app_store_refund", "bo": "voided"}
    assert reason == "Google voided purchase (friendly_fraud)"
    ignored = await deliver(
        client, "apple", {"notificationType": "DID_RENEW", "notificationUUID": "apple-renew"}
    )
    assert ignored.json()["outcome"] == "ignored"
    await books_ok(gql)


async def test_a_provider_refund_of_our_own_refund_posts_nothing_more(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    ours, theirs = await buy(gql), await buy(gql, user="bo")
    refunded = await gql(
        REFUND,
        {"input": {"purchaseId": ours, "idempotencyKey": "refund-ours-1", "reason": "asked"}},
        user="sup",
        roles=("support",),
    )
    assert refunded["data"]["refundPurchase"]["errors"] == []
    entries = await count(sessions, JournalEntryRow)
    echo = await deliver(
        client, "card", provider_refund(await reference_of(sessions, ours), amount=PRICE_350)
    )
    assert echo.json()["outcome"] == "already_refunded"
    assert await count(sessions, JournalEntryRow) == entries
    direct = await deliver(
        client, "card", provider_refund(await reference_of(sessions, theirs), amount=PRICE_350)
    )
    assert direct.json()["outcome"] == "charged_back"
    assert await coins_of(gql, "bo") == "0"
    await books_ok(gql)


# Exactly once ------------------------------------------------------------------------------


async def test_an_event_delivered_again_answers_as_the_first_time_and_posts_nothing(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    purchase = await buy(gql)
    event = dispute(await reference_of(sessions, purchase), amount=PRICE_350, fee=1500)
    first = (await deliver(client, "card", event)).json()
    entries = await count(sessions, JournalEntryRow)
    second = (await deliver(client, "card", event)).json()
    assert second == {**first, "duplicate": True}
    assert await count(sessions, JournalEntryRow) == entries


async def test_an_event_delivered_many_times_at_once_posts_once(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The provider's retry races its first delivery: eight copies of one dispute event arrive
    at the same moment, on their own database connections. One chargeback, one fee."""
    purchase = await buy(gql)
    event = dispute(await reference_of(sessions, purchase), amount=PRICE_350, fee=1500)
    answers = [
        response.json()
        for response in await asyncio.gather(*(deliver(client, "card", event) for _ in range(8)))
    ]
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 7
    assert {a["outcome"] for a in answers} == {"charged_back"}
    async with sessions() as session:
        kinds = (
            await session.execute(
                text("SELECT kind, count(*) FROM journal_entry GROUP BY kind ORDER BY kind")
            )
        ).all()
    assert dict(kinds) == {"chargeback": 1, "dispute_fee": 1, "purchase": 1}
    await books_ok(gql)


async def test_two_events_for_one_purchase_at_once_charge_it_back_once(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A dispute and a refund made at the provider, for the same charge, at the same moment
    as support refunds it through us: the purchase is taken back exactly once."""
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    answers = await asyncio.gather(
        deliver(client, "card", dispute(reference, amount=PRICE_350)),
        deliver(client, "card", provider_refund(reference, amount=PRICE_350)),
        gql(
            REFUND,
            {"input": {"purchaseId": purchase, "idempotencyKey": "race-refund", "reason": "x"}},
            user="sup",
            roles=("support",),
        ),
    )
    outcomes = [answers[0].json()["outcome"], answers[1].json()["outcome"]]
    refund_errors = answers[2]["data"]["refundPurchase"]["errors"]
    taken = outcomes.count("charged_back") + (refund_errors == [])
    assert taken == 1, (outcomes, refund_errors)
    assert await coins_of(gql, "ana") == "0"
    await books_ok(gql)


# What support and finance see ---------------------------------------------------------------

CHARGEBACKS = """
query C($user: String) {
  chargebacks(userId: $user) {
    edges { node {
      purchaseId userId provider kind caseId reason status cash { amount currency }
      coinsClawedBack coinsSpent valueReleased { amount } diamondsClawedBack
      payableClawedBack { amount } loss { amount } lossBookedTo contraRevenue { amount }
      clawbacks { creatorId coins diamonds } resolvedAt
    } }
  }
}
"""
PROVIDER_EVENTS = """
query E($purchase: ID) {
  providerEvents(purchaseId: $purchase) { edges { node { provider eventType outcome } } }
}
"""
REFUSED = "{ refusedDeliveries { edges { node { provider reason bodyBytes } } } }"
FREEZE = """
mutation F($input: SetAccountFrozenInput!) {
  setAccountFrozen(input: $input) { standing { frozen } errors { code } }
}
"""


async def test_support_and_finance_read_chargebacks_and_finance_reads_provider_events(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    purchase = await buy(gql)
    reference = await reference_of(sessions, purchase)
    await deliver(client, "card", dispute(reference, amount=PRICE_350, dispute_id="dp_9"))
    await deliver(client, "card", dispute(reference, amount=PRICE_350), signature="")
    expected: dict[str, Any] = {
        "purchaseId": str(row_id(purchase)),  # a reference field: the row id this release
        "userId": "ana",
        "provider": "card",
        "kind": "DISPUTE",
        "caseId": "dp_9",
        "reason": "fraudulent",
        "status": "OPEN",
        "cash": {"amount": "4.99", "currency": "USD"},
        "coinsClawedBack": "350",
        "coinsSpent": "0",
        "valueReleased": {"amount": "4.99"},
        "diamondsClawedBack": "0",
        "payableClawedBack": {"amount": "0.00"},
        "loss": {"amount": "0.00"},
        "lossBookedTo": "RECEIVABLE",
        "contraRevenue": {"amount": "0.00"},
        "clawbacks": [],
        "resolvedAt": None,
    }
    for user, roles in (("sue", ("support",)), ("fin", ("finance",))):
        reply = await gql(CHARGEBACKS, {"user": "ana"}, user=user, roles=roles)
        assert [e["node"] for e in reply["data"]["chargebacks"]["edges"]] == [expected]
    events = await gql(PROVIDER_EVENTS, {"purchase": purchase}, user="fin", roles=("finance",))
    assert [e["node"] for e in events["data"]["providerEvents"]["edges"]] == [
        {"provider": "card", "eventType": "charge.dispute.created", "outcome": "charged_back"}
    ]
    refused = await gql(REFUSED, user="fin", roles=("finance",))
    nodes = [e["node"] for e in refused["data"]["refusedDeliveries"]["edges"]]
    assert [(n["provider"], n["reason"]) for n in nodes] == [("card", "MISSING_SIGNATURE")]
    for query in (CHARGEBACKS, PROVIDER_EVENTS, REFUSED):
        denied = await gql(query, user="ana")
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    for query in (PROVIDER_EVENTS, REFUSED):
        denied = await gql(query, user="sue", roles=("support",))
        assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_support_lifts_the_freeze_a_chargeback_put_on(
    gql: GraphQLClient, client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    purchase = await buy(gql)
    await deliver(client, "card", dispute(await reference_of(sessions, purchase), amount=499))
    lifted = await gql(
        FREEZE,
        {"input": {"userId": "ana", "frozen": False, "reason": "card owner confirmed"}},
        user="sue",
        roles=("support",),
    )
    assert lifted["data"]["setAccountFrozen"] == {"standing": {"frozen": False}, "errors": []}
    assert await buy(gql)
    audit = await gql(
        '{ auditLog(subject: "user:ana") { edges { node { actor action reason } } } }',
        user="fin",
        roles=("finance",),
    )
    actions = [
        (e["node"]["actor"], e["node"]["action"]) for e in audit["data"]["auditLog"]["edges"]
    ]
    assert actions == [("user:sue", "account.thawed"), ("provider:card", "account.frozen")]
