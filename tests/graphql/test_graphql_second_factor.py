"""The payout second factor over HTTP, tried as a thief holding a creator's token would try it:
fifteen guesses in one POST (aliases), a code used for a second payout, six requests racing
with one code, an account of the thief's registered without a code or paid to at once; and what
a copy of the database shows of secrets and accounts. Every attempt is counted in PostgreSQL,
so a second process (a second app on the same database) sees the same lock."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pyotp
import pytest
from sqlalchemy.engine import URL

from api.app import create_app
from api.database import libpq_url
from api.settings import Settings
from schema.nodes import global_id
from tests.conftest import GraphQLClient
from tests.gifts.streaming import CREATOR, data, earnings, the_only_payload_error
from tests.graphql.test_graphql_payouts import (
    METHODS,
    REGISTER_METHOD,
    confirm,
    enrol,
    ready_bo,
    register,
    request,
    second_factor_of,
)
from tests.payouts.clock import TOTP_CLOCK

CONTROLS = "query Controls { payoutControls { secondFactorLockedUntil methodCoolingOffHours } }"
OTHER_KEY = "b3RoZXItc2VjcmV0cy1rZXktMzItYnl0ZXMtbG9uZyE="
"""Another 32-byte secrets key (``other-secrets-key-32-bytes-long!``)."""


def guesses(method_id: str, codes: list[str]) -> str:
    """One POST of ``len(codes)`` aliased requestPayout, each with its own key and code."""
    fields = "payout { id } errors { code field retryAfterSeconds }"
    aliased = (
        f'g{n}: requestPayout(input: {{idempotencyKey: "bo-guess-{n:04d}", diamonds: "2000", '
        f'payoutMethodId: "{method_id}", totpCode: "{code}"}}) {{ {fields} }}'
        for n, code in enumerate(codes)
    )
    return "mutation Guess { " + " ".join(aliased) + " }"


def wrong_codes(secret: str, count: int) -> list[str]:
    """``count`` codes, none of them accepted now."""
    totp = pyotp.TOTP(secret)
    accepted = {totp.at(TOTP_CLOCK.now + 30 * offset) for offset in (-1, 0, 1)}
    return [code for code in (f"{n:06d}" for n in range(100)) if code not in accepted][:count]


async def sql(db_url: URL, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(libpq_url(db_url))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


@asynccontextmanager
async def another_process(
    settings: Settings, db_url: URL, token: Callable[..., str]
) -> AsyncIterator[GraphQLClient]:
    """A second app on the same database, as another worker process would be."""
    app = create_app(settings, db_url)
    payouts = app.state.services.payouts
    payouts.second_factor = replace(payouts.second_factor, clock=TOTP_CLOCK)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coinbooks.test") as http:
        yield GraphQLClient(http, token)
    await app.state.engine.dispose()


async def test_fifteen_guesses_in_one_post_count_fifteen_and_lock_the_second_factor(
    gql: GraphQLClient, settings: Settings, db_url: URL, token: Callable[..., str]
) -> None:
    """Five wrong codes (the default) lock the second factor for 900 seconds: the sixth to the
    fifteenth alias are refused without being checked, and so is the right code afterwards, in
    another POST and in another process."""
    secret, method = await ready_bo(gql)

    reply = await gql(guesses(method, wrong_codes(secret, 15)), user="bo", roles=CREATOR)

    errors = [the_only_payload_error(reply["data"][f"g{n}"]) for n in range(15)]
    assert [e["code"] for e in errors] == ["INVALID_TOTP_CODE"] * 5 + ["SECOND_FACTOR_LOCKED"] * 10
    assert {e["field"] for e in errors} == {"totpCode"}
    assert [e["retryAfterSeconds"] for e in errors[:5]] == [None] * 5
    assert all(890 <= e["retryAfterSeconds"] <= 900 for e in errors[5:])
    right = await request(gql, secret, method, key="bo-payout-right")
    assert the_only_payload_error(right)["code"] == "SECOND_FACTOR_LOCKED"
    async with another_process(settings, db_url, token) as elsewhere:
        there = await request(elsewhere, secret, method, key="bo-payout-elsewhere")
        assert the_only_payload_error(there)["code"] == "SECOND_FACTOR_LOCKED"
        controls = data(await elsewhere(CONTROLS, user="bo", roles=CREATOR), "payoutControls")
    assert controls["secondFactorLockedUntil"] is not None
    assert (await earnings(gql, "bo"))["diamondsReserved"] == "0"

    # the lockout over (its end moved into the past), the right code passes again
    await sql(db_url, "UPDATE second_factor_throttle SET locked_until = now() - interval '1s'")
    assert (await request(gql, secret, method, key="bo-payout-later"))["errors"] == []


async def test_a_code_serves_one_payout(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)
    code = TOTP_CLOCK.next_code(secret)

    first = await request(gql, secret, method, "2000", "bo-payout-0001", code=code)
    second = await request(gql, secret, method, "2000", "bo-payout-0002", code=code)

    assert first["errors"] == []
    assert the_only_payload_error(second) == {
        "code": "SECOND_FACTOR_REUSED",
        "message": "That code was used already: wait for the next one",
        "field": "totpCode",
    }
    assert (await earnings(gql, "bo"))["diamondsReserved"] == "2000"
    retry = await request(gql, secret, method, "2000", "bo-payout-0001", code=code)
    assert (retry["replayed"], retry["payout"]["id"]) == (True, first["payout"]["id"])


async def test_requests_racing_with_one_code_use_it_once(gql: GraphQLClient, db_url: URL) -> None:
    """Six requests with the same right code, each on a connection of its own, at once."""
    secret, method = await ready_bo(gql)
    code = TOTP_CLOCK.next_code(secret)

    payloads = await asyncio.gather(
        *(request(gql, secret, method, "2000", f"bo-race-{n:04d}", code=code) for n in range(6))
    )

    refused = [the_only_payload_error(p)["code"] for p in payloads if p["errors"]]
    assert (6 - len(refused), refused) == (1, ["SECOND_FACTOR_REUSED"] * 5)
    steps = await sql(
        db_url, "SELECT purpose FROM second_factor_step WHERE purpose LIKE 'payout:%'"
    )
    assert len(steps) == 1
    assert (await earnings(gql, "bo"))["diamondsReserved"] == "2000"


async def test_a_payout_method_needs_the_second_factor(gql: GraphQLClient) -> None:
    no_factor = await register(gql, pyotp.random_base32())
    assert the_only_payload_error(no_factor)["code"] == "TOTP_NOT_ENROLLED"
    secret = await enrol(gql)
    confirming = TOTP_CLOCK.next_code(secret)
    assert (await confirm(gql, confirming))["confirmed"] is True

    no_code = {"kind": "PAYPAL", "holderName": "Thief", "paypalEmail": "thief@example.com"}
    reply = await gql(REGISTER_METHOD, {"input": no_code}, user="bo", roles=CREATOR)
    assert reply["data"] is None and "totpCode" in reply["errors"][0]["message"]
    wrong = await register(gql, secret, totpCode=TOTP_CLOCK.wrong_code(secret))
    reused = await register(gql, secret, totpCode=confirming)
    assert [the_only_payload_error(p)["code"] for p in (wrong, reused)] == [
        "INVALID_TOTP_CODE",
        "SECOND_FACTOR_REUSED",
    ]
    assert data(await gql(METHODS, user="bo", roles=CREATOR), "payoutMethods") == []
    assert (await register(gql, secret))["errors"] == []


async def test_a_new_payout_method_waits_out_its_cooling_off(
    gql: GraphQLClient, db_url: URL
) -> None:
    """With an hour's cooling-off, Bo's new bank account is not paid to until it has passed; the
    refused request used no code."""
    secret, method = await ready_bo(gql)
    code = TOTP_CLOCK.next_code(secret)

    early = await request(gql, secret, method, code=code)

    error = the_only_payload_error(early)
    assert (error["code"], error["field"]) == ("PAYOUT_METHOD_COOLING_OFF", "payoutMethodId")
    assert method == global_id("PayoutMethod", 1)  # messages name the row, as a payout's do
    assert error["message"].startswith("Payout method 1 is new: it can be paid to from ")
    controls = data(await gql(CONTROLS, user="bo", roles=CREATOR), "payoutControls")
    assert controls["methodCoolingOffHours"] == 1.0
    await sql(db_url, "UPDATE payout_method SET created_at = created_at - interval '1 hour'")
    later = await request(gql, secret, method, code=code)
    assert later["errors"] == [] and later["payout"]["status"] == "REQUESTED"


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """An hour's cooling-off for the test of it; none for the others."""
    if request.node.name != "test_a_new_payout_method_waits_out_its_cooling_off":
        return settings
    return settings.model_copy(update={"payout_method_cooling_off_hours": 1})


async def test_the_secret_is_kept_sealed(gql: GraphQLClient, db_url: URL) -> None:
    secret = await enrol(gql)

    [row] = await sql(db_url, "SELECT secret FROM creator_totp WHERE creator_id = 'bo'")

    assert row["secret"].startswith("aesgcm1:") and secret not in row["secret"]
    with pytest.raises(asyncpg.CheckViolationError):
        await sql(db_url, "UPDATE creator_totp SET secret = $1", secret)
    assert (await confirm(gql, TOTP_CLOCK.next_code(secret)))["confirmed"] is True


async def test_fingerprints_are_keyed(
    gql: GraphQLClient, settings: Settings, db_url: URL, token: Callable[..., str]
) -> None:
    """Bo and Dee register the same account under the service's key: one fingerprint, not the
    account's plain SHA-256. Under another key (Cy, on a service keyed otherwise) it differs."""
    account: dict[str, Any] = {"accountNumber": "000123456789", "routingNumber": "021000021"}
    await register(gql, await second_factor_of(gql, "bo"), "bo", **account)
    await register(gql, await second_factor_of(gql, "dee"), "dee", **account)
    rekeyed = settings.model_copy(update={"secrets_key": OTHER_KEY})
    async with another_process(rekeyed, db_url, token) as elsewhere:
        assert (await register(elsewhere, await second_factor_of(elsewhere, "cy"), "cy"))[
            "errors"
        ] == []

    rows = await sql(db_url, "SELECT creator_id, fingerprint FROM payout_method")
    found = {row["creator_id"]: row["fingerprint"] for row in rows}
    unkeyed = hashlib.sha256(b"bank_account:021000021:000123456789").hexdigest()
    assert found["bo"] == found["dee"] != found["cy"]
    assert all(f.startswith("hmac1:") and unkeyed not in f for f in found.values())
