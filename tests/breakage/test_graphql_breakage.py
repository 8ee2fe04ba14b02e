"""recogniseBreakage over HTTP through the real app: finance only (every other role refused,
nobody signed in refused), a dry run as a forecast, a day not yet ended refused in the payload,
a real run of yesterday (nothing is two years old in a new database) and its replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounting.purchases.service import PurchaseService
from tests.breakage.support import buy
from tests.conftest import GraphQLClient

RECOGNISE = """
mutation R($input: RecogniseBreakageInput!) {
  recogniseBreakage(input: $input) {
    run { asOf afterDays unusedSince dryRun walletCount coins value { amount currency }
          wallets { userId coins value { amount currency } entryId } more }
    replayed
    errors { code message field }
  }
}"""


def breakage_input(as_of: str, *, dry_run: bool, key: str = "breakage-gql-0001") -> dict[str, Any]:
    return {"input": {"asOf": as_of, "dryRun": dry_run, "idempotencyKey": key}}


@pytest.mark.parametrize("roles", [("viewer",), ("creator",), ("support",), ("admin",), ()])
async def test_only_finance_recognises_breakage(gql: GraphQLClient, roles: tuple[str, ...]) -> None:
    variables = breakage_input("2099-12-31", dry_run=True)
    if roles:
        reply = await gql(RECOGNISE, variables, user="someone", roles=roles)
        expected = "FORBIDDEN"
    else:
        reply = await gql(RECOGNISE, variables)
        expected = "UNAUTHENTICATED"
    assert reply["data"] is None
    assert len(reply["errors"]) == 1
    assert reply["errors"][0]["extensions"]["code"] == expected


async def test_finance_forecasts_runs_and_replays_breakage(
    gql: GraphQLClient, purchases: PurchaseService
) -> None:
    await buy(purchases, "ana", "ana-buys-0001")

    forecast = await gql(
        RECOGNISE, breakage_input("2099-12-31", dry_run=True), user="fiona", roles=("finance",)
    )
    payload = forecast["data"]["recogniseBreakage"]
    assert payload["errors"] == [] and payload["replayed"] is False
    assert payload["run"] == {
        "asOf": "2099-12-31",
        "afterDays": 730,
        # midnight starting 2100-01-01, less 730 days (2098 and 2099 have 365 days each)
        "unusedSince": "2098-01-01T00:00:00+00:00",
        "dryRun": True,
        "walletCount": 1,
        "coins": "350",
        "value": {"amount": "4.99", "currency": "USD"},
        "wallets": [
            {
                "userId": "ana",
                "coins": "350",
                "value": {"amount": "4.99", "currency": "USD"},
                "entryId": None,
            }
        ],
        "more": False,
    }

    too_early = await gql(
        RECOGNISE, breakage_input("2099-12-31", dry_run=False), user="fiona", roles=("finance",)
    )
    payload = too_early["data"]["recogniseBreakage"]
    assert payload["run"] is None
    assert [(e["code"], e["field"]) for e in payload["errors"]] == [
        ("BREAKAGE_DATE_NOT_ENDED", "asOf")
    ]

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    for replayed in (False, True):
        done = await gql(
            RECOGNISE, breakage_input(yesterday, dry_run=False), user="fiona", roles=("finance",)
        )
        payload = done["data"]["recogniseBreakage"]
        assert payload["errors"] == [] and payload["replayed"] is replayed
        assert payload["run"]["walletCount"] == 0 and payload["run"]["dryRun"] is False

    bad_key = await gql(
        RECOGNISE,
        breakage_input(yesterday, dry_run=False, key="short"),
        user="fiona",
        roles=("finance",),
    )
    assert [e["code"] for e in bad_key["data"]["recogniseBreakage"]["errors"]] == [
        "INVALID_IDEMPOTENCY_KEY"
    ]
