"""Period close over HTTP, through the real ASGI app: finance closes M1 (two months ago) and
reads it back; a refused close comes back typed in the payload with its field; verifyChain says
intact, then names the entry a superuser changed behind the triggers; every other role is
refused and closes nothing.

The books: 10 coins issued and spent on M1's 3rd, 4 on its 20th, 6 on M2's 5th."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from tests.close.support import grant, months_ago, name, raw
from tests.conftest import GraphQLClient

__all__ = ["raw"]

DAY = timedelta(days=1)
CLOSE = """
mutation($input: ClosePeriodInput!) {
  closePeriod(input: $input) {
    closedPeriod { month closedBy reason override overrideReason openExceptions headEntryId }
    errors { code message field }
  }
}"""
CLOSED = "{ closedPeriods { month closedBy headEntryId headHash } }"
VERIFY = "{ verifyChain { intact entriesChecked sealed headEntryId firstDifference detail } }"


async def three_entries(raw: asyncpg.Connection) -> list[int]:
    m1, m2 = months_ago(2), months_ago(1)
    entries = [
        await grant(raw, "m1-a", m1 + 2 * DAY, 10),
        await grant(raw, "m1-b", m1 + 19 * DAY, 4),
        await grant(raw, "m2-a", m2 + 4 * DAY, 6),
    ]
    return [entry.id for entry in entries]


async def finance(gql: GraphQLClient, query: str, **variables: object) -> dict[str, Any]:
    reply = await gql(query, dict(variables), user="fiona", roles=("finance",))
    assert "errors" not in reply, reply
    data: dict[str, Any] = reply["data"]
    return data


async def test_finance_closes_a_month_and_verifies_the_chain(
    gql: GraphQLClient, raw: asyncpg.Connection
) -> None:
    ids = await three_entries(raw)
    m1, m2 = name(months_ago(2)), name(months_ago(1))
    out_of_order = await finance(gql, CLOSE, input={"month": m2, "reason": "month-end"})
    assert out_of_order["closePeriod"] == {
        "closedPeriod": None,
        "errors": [
            {
                "code": "PERIOD_OUT_OF_ORDER",
                "message": f"Months close in order: the next to close is {m1}",
                "field": "month",
            }
        ],
    }
    no_reason = await finance(
        gql, CLOSE, input={"month": m1, "reason": "month-end", "override": True}
    )
    assert no_reason["closePeriod"]["errors"][0]["field"] == "overrideReason"
    closed = await finance(gql, CLOSE, input={"month": m1, "reason": "month-end"})
    assert closed["closePeriod"] == {
        "closedPeriod": {
            "month": m1,
            "closedBy": "user:fiona",
            "reason": "month-end",
            "override": False,
            "overrideReason": None,
            "openExceptions": 0,
            "headEntryId": str(ids[2]),
        },
        "errors": [],
    }
    periods = (await finance(gql, CLOSED))["closedPeriods"]
    assert [(p["month"], p["headEntryId"]) for p in periods] == [(m1, str(ids[2]))]
    assert (await finance(gql, VERIFY))["verifyChain"] == {
        "intact": True,
        "entriesChecked": 3,
        "sealed": 3,
        "headEntryId": str(ids[2]),
        "firstDifference": None,
        "detail": "",
    }
    await raw.execute("SET session_replication_role = replica")
    await raw.execute("UPDATE posting SET amount = amount * 2 WHERE entry_id = $1", ids[0])
    tampered = (await finance(gql, VERIFY))["verifyChain"]
    assert tampered["intact"] is False and tampered["firstDifference"] == str(ids[0])


@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("support",), ("admin",)])
async def test_only_finance_closes_or_verifies(
    gql: GraphQLClient, raw: asyncpg.Connection, roles: tuple[str, ...]
) -> None:
    await three_entries(raw)
    variables = {"input": {"month": name(months_ago(2)), "reason": "month-end"}}
    for query, args in ((CLOSE, variables), (CLOSED, {}), (VERIFY, {})):
        reply = await gql(query, args, user="mallory", roles=roles)
        assert [e["extensions"]["code"] for e in reply["errors"]] == ["FORBIDDEN"]
        anonymous = await gql(query, args)
        assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    assert await raw.fetchval("SELECT count(*) FROM closed_period") == 0
