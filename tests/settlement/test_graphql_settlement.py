"""Settlement over HTTP, through the real ASGI app: finance imports a report and resolves what it
did not reconcile (GraphQL), reads the reconciliation (GraphQL and ``GET
/exports/reconciliation``); every input error comes back typed in the payload; every other role
is refused, a caller without a token unauthenticated, and nothing is imported for them.

The book: Ana and Bo each buy 350 coins for $4.99 by card; the card network is expected to keep
2.9% x 499 = 14.471 -> 14 cents + 30 = 44 cents, so each leaves $4.55 in the card's clearing.
The report: Ana's charge as expected (net 4.55), an unknown charge ch_ghost of $2.00 (fee 0.36,
net 1.64), and a payout of 4.55 + 1.64 = $6.19. Bo's charge is in no report."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.purchases.service import PurchaseService
from tests.conftest import GraphQLClient
from tests.settlement.support import balance, buy, counts, report

IMPORT = """
mutation($input: ImportSettlementReportInput!) {
  importSettlementReport(input: $input) {
    report { reportId provider lineCount entryId
             lines { lineNumber type status net { amount currency } difference { amount } } }
    exceptions { id kind providerReference difference { amount currency } status }
    replayed
    errors { code message field line }
  }
}"""
RESOLVE = """
mutation($input: ResolveReconciliationExceptionInput!) {
  resolveReconciliationException(input: $input) {
    exception { id status action reason resolvedBy resolutionEntryId }
    replayed
    errors { code message field }
  }
}"""
EXCEPTIONS = """
query($status: ReconciliationExceptionStatus) {
  reconciliationExceptions(status: $status) {
    edges { node { kind providerReference status difference { amount currency } } }
  }
}"""
REPORTS = "{ settlementReports { edges { node { reportId lineCount lines { type } } } } }"
REPORT = "query($id: ID!) { settlementReport(id: $id) { reportId lines { status } } }"


async def as_finance(gql: GraphQLClient, query: str, variables: dict[str, Any]) -> Any:
    reply = await gql(query, variables, user="fiona", roles=("finance",))
    assert "errors" not in reply, reply
    [value] = reply["data"].values()
    return value


async def book(purchases: PurchaseService) -> str:
    """Ana's and Bo's purchases; the report of Ana's charge and ch_ghost."""
    ana = await buy(purchases, "ana", "coins_350")
    await buy(purchases, "bo", "coins_350")
    return report(
        "card-http-1",
        "card",
        (ana.reference, "charge", "4.99", "0.44", "4.55", "USD"),
        ("ch_ghost", "charge", "2.00", "0.36", "1.64", "USD"),
        ("po_http_1", "payout", "-6.19", "0.00", "-6.19", "USD"),
    )


async def test_finance_imports_a_report_and_resolves_its_exceptions(
    gql: GraphQLClient, purchases: PurchaseService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The import reconciles Ana's charge, finds ch_ghost missing in the ledger (clearing keeps
    -1.64 for it) and Bo's charge missing in the report (4.55); the bank gets 6.19. Finance
    writes ch_ghost off: clearing goes 9.10 - 6.19 + 1.64 = 4.55, Bo's charge alone."""
    text = await book(purchases)
    done = await as_finance(gql, IMPORT, {"input": {"report": text}})
    assert done["errors"] == [] and done["replayed"] is False
    assert [(x["type"], x["status"]) for x in done["report"]["lines"]] == [
        ("charge", "MATCHED"),
        ("charge", "MISSING_IN_LEDGER"),
        ("payout", "BANK_TRANSFER"),
    ]
    found = {x["providerReference"]: x for x in done["exceptions"]}
    assert found["ch_ghost"]["kind"] == "MISSING_IN_LEDGER"
    assert found["ch_ghost"]["difference"] == {"amount": "-1.64", "currency": "USD"}
    assert [x["kind"] for x in found.values()].count("MISSING_IN_REPORT") == 1
    assert await balance(sessions, "platform:bank:USD") == 6_190_000

    again = await as_finance(gql, IMPORT, {"input": {"report": text}})
    assert again["replayed"] is True and again["errors"] == []

    resolve = {
        "exceptionId": found["ch_ghost"]["id"],
        "action": "WRITE_OFF",
        "reason": "test charge by the provider",
        "idempotencyKey": "resolve-ghost-01",
    }
    resolved = await as_finance(gql, RESOLVE, {"input": resolve})
    assert resolved["errors"] == []
    assert resolved["exception"]["status"] == "RESOLVED"
    assert resolved["exception"]["action"] == "WRITE_OFF"
    assert resolved["exception"]["resolvedBy"] == "user:fiona"
    assert resolved["exception"]["resolutionEntryId"] is not None
    assert await balance(sessions, "platform:clearing:card:USD") == 4_550_000

    still_open = await as_finance(gql, EXCEPTIONS, {"status": "OPEN"})
    assert [e["node"]["kind"] for e in still_open["edges"]] == ["MISSING_IN_REPORT"]
    reports = await as_finance(gql, REPORTS, {})
    assert [e["node"]["reportId"] for e in reports["edges"]] == ["card-http-1"]
    assert reports["edges"][0]["node"]["lines"] is None


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"input": {"report": "report_id\n"}}, "MALFORMED_SETTLEMENT_REPORT", None),
        (
            {
                "input": {
                    "report": report(
                        "r-bad", "card", ("ch_1", "charge", "1.00", "0.10", "0.80", "USD")
                    )
                }
            },
            "MALFORMED_SETTLEMENT_REPORT",
            "net",
        ),
    ],
)
async def test_a_malformed_report_is_a_typed_error_naming_its_line(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    variables: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    done = await as_finance(gql, IMPORT, variables)
    [error] = done["errors"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["line"] in (1, 2) and error["message"].startswith(f"Line {error['line']}: ")
    assert done["report"] is None
    assert await counts(sessions) == (0, 0, 0)


async def test_other_content_under_a_report_id_and_bad_resolutions_are_typed_errors(
    gql: GraphQLClient, purchases: PurchaseService
) -> None:
    text = await book(purchases)
    first = await as_finance(gql, IMPORT, {"input": {"report": text}})
    changed = text.replace("ch_ghost,charge,2.00,0.36,1.64", "ch_ghost,charge,2.00,0.35,1.65")
    refused = await as_finance(gql, IMPORT, {"input": {"report": changed}})
    assert [e["code"] for e in refused["errors"]] == ["SETTLEMENT_REPORT_ID_REUSED"]

    ghost = next(x for x in first["exceptions"] if x["providerReference"] == "ch_ghost")
    cases = [
        ({"exceptionId": "nope"}, "RECONCILIATION_EXCEPTION_NOT_FOUND", "exceptionId"),
        ({"exceptionId": "99999"}, "RECONCILIATION_EXCEPTION_NOT_FOUND", "exceptionId"),
        ({"reason": ""}, "INVALID_REASON", "reason"),
        ({"idempotencyKey": "short"}, "INVALID_IDEMPOTENCY_KEY", "idempotencyKey"),
    ]
    for override, code, field in cases:
        resolve = {
            "exceptionId": ghost["id"],
            "action": "ACCEPT",
            "reason": "checked",
            "idempotencyKey": "resolve-ghost-02",
            **override,
        }
        done = await as_finance(gql, RESOLVE, {"input": resolve})
        assert [(e["code"], e["field"]) for e in done["errors"]] == [(code, field)]
        assert done["exception"] is None
    accepted = {
        "exceptionId": ghost["id"],
        "action": "ACCEPT",
        "reason": "ok",
        "idempotencyKey": "resolve-ghost-03",
    }
    assert (await as_finance(gql, RESOLVE, {"input": accepted}))["errors"] == []
    again = {**accepted, "idempotencyKey": "resolve-ghost-04"}
    done = await as_finance(gql, RESOLVE, {"input": again})
    assert [e["code"] for e in done["errors"]] == ["RECONCILIATION_EXCEPTION_RESOLVED"]


OPERATIONS = [
    ("importSettlementReport", IMPORT, {"input": {"report": "x"}}),
    (
        "resolveReconciliationException",
        RESOLVE,
        {
            "input": {
                "exceptionId": "1",
                "action": "ACCEPT",
                "reason": "r",
                "idempotencyKey": "k" * 8,
            }
        },
    ),
    ("reconciliationExceptions", EXCEPTIONS, {}),
    ("settlementReports", REPORTS, {}),
    ("settlementReport", REPORT, {"id": "1"}),
]


@pytest.mark.parametrize(("name", "query", "variables"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("support",), ("admin",), ()])
async def test_only_finance_settles(
    gql: GraphQLClient,
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    query: str,
    variables: dict[str, Any],
    roles: tuple[str, ...],
) -> None:
    if roles:
        reply = await gql(query, variables, user="someone", roles=roles)
        expected = "FORBIDDEN"
    else:
        reply = await gql(query, variables)
        expected = "UNAUTHENTICATED"
    [error] = reply["errors"]
    assert error["extensions"]["code"] == expected
    assert error["path"] == [name]
    if expected == "FORBIDDEN":
        assert "without the finance role" in error["message"]
    assert await counts(sessions) == (0, 0, 0)


async def test_finance_exports_the_reconciliation_as_csv_and_no_one_else_may(
    gql: GraphQLClient,
    client: httpx.AsyncClient,
    token: Callable[..., str],
    purchases: PurchaseService,
) -> None:
    await as_finance(gql, IMPORT, {"input": {"report": await book(purchases)}})

    def headers(*roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token('fin', *roles)}"}

    response = await client.get("/exports/reconciliation", headers=headers("finance"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert sorted((r["kind"], r["difference"], r["status"], r["report_id"]) for r in rows) == [
        ("missing_in_ledger", "-1.64", "open", "card-http-1"),
        ("missing_in_report", "4.55", "open", "card-http-1"),
    ]
    resolved = await client.get(
        "/exports/reconciliation", params={"status": "resolved"}, headers=headers("finance")
    )
    assert resolved.status_code == 200 and resolved.text.count("\n") == 1  # the header alone

    bad = await client.get(
        "/exports/reconciliation", params={"status": "closed"}, headers=headers("finance")
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_USER_INPUT"
    for role in ("viewer", "creator", "support", "admin"):
        refused = await client.get("/exports/reconciliation", headers=headers(role))
        assert refused.status_code == 403
    assert (await client.get("/exports/reconciliation")).status_code == 401
