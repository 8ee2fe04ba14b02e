"""The journal over GraphQL: finance lists entries with their postings, rates, references and
reversal links, filtered and paged; nobody else may.

The book is tests/reads/test_journal.py's: 1-3 purchases by Ana ($4.99 card, 44c fee), Bo
($5.49 on iOS, Apple keeps $1.65) and Cy (EUR 4.99), 4 Ana's five roses to Bo, 5 their hold
released, 6 Cy's purchase refunded by Sue, 7 Fin's $4.55 card settlement, 8 its reversal."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.chargebacks.rules import LossPolicy
from accounting.chargebacks.service import ChargebackClaim, ChargebackKind, charge_back
from accounting.gifts.service import GiftService
from accounting.ledger.posting import in_transaction
from accounting.purchases.service import PurchaseService
from schema.nodes import decode_global_id, global_id
from tests.conftest import GraphQLClient
from tests.reads.test_journal import Book, small_book

JOURNAL = """
query Journal($filter: JournalFilter, $order: JournalOrder, $first: Int, $after: String) {
  journal(filter: $filter, order: $order, first: $first, after: $after) {
    edges { cursor node { id kind } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

JOURNAL_ENTRY = """
query JournalEntry($id: ID!) {
  journalEntry(id: $id) {
    id kind eventKey postedAt actor memo
    rates { key value }
    refs
    reversesEntryId reversedByEntryId
    postings { accountCode commodity side amount units }
  }
}
"""


@pytest.fixture
async def book(
    sessions: async_sessionmaker[AsyncSession], purchases: PurchaseService, gifts: GiftService
) -> Book:
    return await small_book(sessions, purchases, gifts)


async def finance(gql: GraphQLClient, query: str, **variables: Any) -> dict[str, Any]:
    reply = await gql(query, variables, user="fin", roles=("finance",))
    assert "errors" not in reply, reply
    data: dict[str, Any] = reply["data"]
    return data


async def listed(gql: GraphQLClient, **variables: Any) -> list[str]:
    found = (await finance(gql, JOURNAL, first=100, **variables))["journal"]
    assert found["pageInfo"]["hasNextPage"] is False
    return [row_id(edge["node"]["id"]) for edge in found["edges"]]


def row_id(id: str) -> str:
    """The row id a journal entry's global id names, as the entry ids its neighbours give."""
    decoded = decode_global_id(id)
    assert decoded is not None and decoded[0] == "JournalEntry", id
    return str(decoded[1])


async def test_finance_pages_through_the_journal_newest_first(
    gql: GraphQLClient, book: Book
) -> None:
    seen: list[list[str]] = []
    after = None
    while True:
        page = (await finance(gql, JOURNAL, first=3, after=after))["journal"]
        seen.append([row_id(edge["node"]["id"]) for edge in page["edges"]])
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [["8", "7", "6"], ["5", "4", "3"], ["2", "1"]]
    assert await listed(gql, order="OLDEST_FIRST") == [str(n) for n in range(1, 9)]


async def test_an_entry_with_its_postings_rates_and_references(
    gql: GraphQLClient, book: Book
) -> None:
    entry = (await finance(gql, JOURNAL_ENTRY, id="1"))["journalEntry"]
    assert entry["postedAt"]
    del entry["postedAt"]
    assert entry == {
        "id": global_id("JournalEntry", 1),
        "kind": "purchase",
        "eventKey": "purchase:1",
        "actor": "user:ana",
        "memo": "350 coins bought through card",
        "rates": [{"key": "price", "value": "499 minor units of USD for 350 coins"}],
        "refs": {
            "purchase_id": 1,
            "user_id": "ana",
            "provider": "card",
            "provider_reference": book.card_reference,
            "package": "coins_350",
        },
        "reversesEntryId": None,
        "reversedByEntryId": None,
        "postings": [
            # 4.99 - 0.44 = 4.55 stays in clearing; the coins are whole, the money in dollars
            {
                "accountCode": "platform:coins:issued",
                "commodity": "COIN",
                "side": "DEBIT",
                "amount": "350",
                "units": "350",
            },
            {
                "accountCode": "user:ana:coins",
                "commodity": "COIN",
                "side": "CREDIT",
                "amount": "350",
                "units": "-350",
            },
            {
                "accountCode": "platform:clearing:card:USD",
                "commodity": "USD",
                "side": "DEBIT",
                "amount": "4.99",
                "units": "4990000",
            },
            {
                "accountCode": "user:ana:coins_value",
                "commodity": "USD",
                "side": "CREDIT",
                "amount": "4.99",
                "units": "-4990000",
            },
            {
                "accountCode": "platform:expense:processor_fees:USD",
                "commodity": "USD",
                "side": "DEBIT",
                "amount": "0.44",
                "units": "440000",
            },
            {
                "accountCode": "platform:clearing:card:USD",
                "commodity": "USD",
                "side": "CREDIT",
                "amount": "0.44",
                "units": "-440000",
            },
        ],
    }
    settlement = (await finance(gql, JOURNAL_ENTRY, id="7"))["journalEntry"]
    reversal = (await finance(gql, JOURNAL_ENTRY, id="8"))["journalEntry"]
    assert (settlement["reversesEntryId"], settlement["reversedByEntryId"]) == (None, "8")
    assert (reversal["reversesEntryId"], reversal["reversedByEntryId"]) == ("7", None)
    assert reversal["refs"] == {"provider_reference": "po_card_0001", "reverses": 7}
    assert [(p["side"], p["amount"]) for p in reversal["postings"]] == [
        ("CREDIT", "4.55"),
        ("DEBIT", "4.55"),
    ]
    assert (await finance(gql, JOURNAL_ENTRY, id="99"))["journalEntry"] is None
    assert (await finance(gql, JOURNAL_ENTRY, id="x"))["journalEntry"] is None


async def test_finance_filters_the_journal(gql: GraphQLClient, book: Book) -> None:
    assert await listed(gql, filter={"userId": "bo"}) == ["5", "4", "2"]
    assert await listed(gql, filter={"purchaseId": "3"}) == ["6", "3"]
    assert await listed(gql, filter={"giftId": "1"}, order="OLDEST_FIRST") == ["4", "5"]
    by_global_id = {"giftId": global_id("Gift", 1)}
    assert await listed(gql, filter=by_global_id, order="OLDEST_FIRST") == ["4", "5"]
    assert await listed(gql, filter={"refundId": "1"}) == ["6"]
    assert await listed(gql, filter={"account": "creator:bo:", "kind": "gift"}) == ["4"]
    assert await listed(gql, filter={"actor": "user:fin"}) == ["8", "7"]
    assert await listed(gql, filter={"providerReference": book.card_reference}) == ["1"]
    assert (
        await listed(gql, filter={"from": "2000-01-01T00:00:00Z", "to": "2001-01-01T00:00Z"}) == []
    )


JOURNAL_POSTINGS = """
query Journal($filter: JournalFilter) {
  journal(filter: $filter, first: 100) {
    edges { node { id kind postings { accountCode side units } } }
    pageInfo { hasNextPage }
  }
}
"""


async def entries(gql: GraphQLClient, **filter: str) -> list[tuple[str, str, list[Any]]]:
    """The entries the filter gives: row id, kind and (account, side, units) of each posting."""
    found = (await finance(gql, JOURNAL_POSTINGS, filter=filter))["journal"]
    assert found["pageInfo"]["hasNextPage"] is False
    return [
        (
            row_id(edge["node"]["id"]),
            edge["node"]["kind"],
            [(p["accountCode"], p["side"], int(p["units"])) for p in edge["node"]["postings"]],
        )
        for edge in found["edges"]
    ]


async def test_the_filter_takes_a_refunds_global_id_or_its_row_id(
    gql: GraphQLClient, book: Book
) -> None:
    """Refund 1 is entry 6: Sue refunds Cy's EUR 4.99 purchase of 500 coins. The 500 coins go
    back to the platform; the EUR 4.99 (4,990,000 micro-units) leaves PayPal's EUR clearing
    account through the FX accounts, where it is worth 4.99 x 1.08 = $5.3892, 5,389,200
    micro-units: the value Cy's wallet held for those coins."""
    refund = [
        (
            "6",
            "refund",
            [
                ("user:cy:coins", "DEBIT", 500),
                ("platform:coins:issued", "CREDIT", -500),
                ("platform:clearing:paypal:EUR", "CREDIT", -4_990_000),
                ("platform:fx:EUR", "DEBIT", 4_990_000),
                ("platform:fx:USD", "CREDIT", -5_389_200),
                ("user:cy:coins_value", "DEBIT", 5_389_200),
            ],
        )
    ]
    assert await entries(gql, refundId=global_id("Refund", 1)) == refund
    assert await entries(gql, refundId="1") == refund
    assert await entries(gql, refundId=global_id("Refund", 2)) == []


async def test_the_filter_takes_a_chargebacks_global_id_or_its_row_id(
    gql: GraphQLClient, sessions: async_sessionmaker[AsyncSession], book: Book
) -> None:
    """Apple refunds Bo's $5.49 purchase of 350 coins (purchase 2), none of them spent: chargeback
    1, entry 9. The $5.49 he paid, 5,490,000 micro-units, goes back to Apple out of its USD
    clearing account (no FX: the purchase was in dollars), his 350 coins go back to the
    platform, and their value, the same 5,490,000, leaves his wallet: nothing is owed again."""
    claim = ChargebackClaim(
        purchase_id=2,
        kind=ChargebackKind.APP_STORE_REFUND,
        case_id="journal-apple-1",
        reason="refunded by Apple",
        actor="provider:apple",
    )
    await in_transaction(
        sessions,
        lambda s: charge_back(
            s, claim, functional_currency="USD", loss_policy=LossPolicy.RECEIVABLE
        ),
    )
    chargeback = [
        (
            "9",
            "chargeback",
            [
                ("platform:clearing:apple:USD", "CREDIT", -5_490_000),
                ("user:bo:coins", "DEBIT", 350),
                ("platform:coins:issued", "CREDIT", -350),
                ("user:bo:coins_value", "DEBIT", 5_490_000),
            ],
        )
    ]
    assert await entries(gql, chargebackId=global_id("Chargeback", 1)) == chargeback
    assert await entries(gql, chargebackId="1") == chargeback
    assert await entries(gql, chargebackId=global_id("Chargeback", 2)) == []


@pytest.mark.parametrize("field", ["giftId", "refundId", "chargebackId"])
async def test_another_types_global_id_is_refused_as_the_gift_id_is(
    gql: GraphQLClient, book: Book, field: str
) -> None:
    """Refund 1, gift 1 and purchase 1 exist: another type's global id names none of them."""
    for other in ("Purchase", "Gift", "Refund", "Chargeback"):
        if other.lower() == field.removesuffix("Id"):
            continue
        reply = await gql(
            JOURNAL, {"filter": {field: global_id(other, 1)}}, user="fin", roles=("finance",)
        )
        assert reply["data"] is None
        (error,) = reply["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"] == f"'{field}' is not an id"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"filter": {"kind": "bonus"}}, "Unknown entry kind"),
        ({"first": 101}, "'first' is 1 to 100"),
        ({"after": "bm90LWEtY3Vyc29y"}, "'after' is not a cursor from this list"),
        ({"filter": {"purchaseId": "one"}}, "'purchaseId' is not an id"),
        ({"filter": {"userId": "no one"}}, "A user id is"),
    ],
)
async def test_a_bad_request_is_refused_with_bad_user_input(
    gql: GraphQLClient, variables: dict[str, Any], message: str
) -> None:
    reply = await gql(JOURNAL, variables, user="fin", roles=("finance",))
    assert reply["data"] is None
    (error,) = reply["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert message in error["message"]


async def test_an_instant_without_an_offset_is_refused_before_anything_runs(
    gql: GraphQLClient,
) -> None:
    """The DateTime scalar refuses it, as a request error naming the variable."""
    reply = await gql(
        JOURNAL, {"filter": {"from": "2026-01-01T00:00:00"}}, user="fin", roles=("finance",)
    )
    assert reply["data"] is None
    (error,) = reply["errors"]
    assert error["message"].startswith("Variable '$filter' has invalid value")
    assert "Give its offset: Z or +hh:mm." in error["message"]


@pytest.mark.parametrize("role", ["viewer", "creator", "support", "admin"])
@pytest.mark.parametrize(("query", "variables"), [(JOURNAL, {}), (JOURNAL_ENTRY, {"id": "1"})])
async def test_only_finance_reads_the_journal(
    gql: GraphQLClient, book: Book, role: str, query: str, variables: dict[str, Any]
) -> None:
    reply = await gql(query, variables, user="ana", roles=(role,))
    assert reply["data"] in (None, {"journalEntry": None})
    (error,) = reply["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "You may not read the books without the finance role"


@pytest.mark.parametrize(("query", "variables"), [(JOURNAL, {}), (JOURNAL_ENTRY, {"id": "1"})])
async def test_signed_out_callers_are_told_to_sign_in(
    gql: GraphQLClient, query: str, variables: dict[str, Any]
) -> None:
    anonymous = await gql(query, variables)
    bad_token = await gql(query, variables, headers={"Authorization": "Bearer not-a-token"})
    for reply in (anonymous, bad_token):
        assert reply["data"] in (None, {"journalEntry": None})
        (error,) = reply["errors"]
        assert error["extensions"]["code"] == "UNAUTHENTICATED"
