"""The identity provider's keys rotate without a restart, over HTTP through the real app: the
JWKS file (COINBOOKS_JWT_JWKS_FILE) is looked at again while the service runs, at most once per
COINBOOKS_JWT_JWKS_RELOAD_SECONDS, and read only when it changed. A key published after the
start verifies, a key removed stops verifying (a token verified before included), a file that
cannot be used keeps the last good keys with a warning and a count in /metrics."""

from __future__ import annotations

import os
from pathlib import Path

import jwt
import pytest
from sqlalchemy.engine import URL

from accounting.policy.access import Role
from api import auth
from api.auth import issue_token
from tests.graphql.conftest import Lines
from tests.graphql.test_metrics import scrape, value
from tests.graphql.test_token_keys import (
    KeyPair,
    claims,
    http_to,
    jwks_file,
    key_pair,
    production,
    refusal,
    wallet_with,
)

SIGNED_IN = {"data": {"wallet": {"coins": "0"}}}
RELOADS = "coinbooks_jwt_jwks_reloads_total"
STALE = "coinbooks_jwt_jwks_stale"
OUTCOMES = ("loaded", "unchanged", "failed")


def sign(pair: KeyPair, kid: str) -> str:
    return jwt.encode(claims(), pair.private, algorithm="ES256", headers={"kid": kid})


async def test_a_key_published_after_the_start_verifies_without_a_restart(
    db_url: URL, tmp_path: Path, json_lines: Lines
) -> None:
    old = key_pair(tmp_path, "ES256", name="old")
    new = key_pair(tmp_path, "ES256", name="new")
    keys = jwks_file(tmp_path, "ES256", {"2026-11": old})
    settings = production(
        db_url, jwt_algorithm="ES256", jwt_jwks_file=keys, jwt_jwks_reload_seconds=0
    )

    async with http_to(settings, db_url) as http:
        before = await wallet_with(http, sign(new, "2026-12"))
        jwks_file(tmp_path, "ES256", {"2026-11": old, "2026-12": new})  # the provider publishes
        with_new = await wallet_with(http, sign(new, "2026-12"))
        with_old = await wallet_with(http, sign(old, "2026-11"))
        samples = await scrape(http)

    assert refusal(before) == "The token is not valid: no key with kid '2026-12'"
    assert with_new == with_old == SIGNED_IN
    assert value(samples, RELOADS, outcome="loaded") == 1
    assert value(samples, RELOADS, outcome="failed") == 0
    assert value(samples, STALE) == 0
    [reloaded] = json_lines.of("jwks_reloaded")
    assert (reloaded["level"], reloaded["file"]) == ("info", str(keys))
    assert (reloaded["kids"], reloaded["added"], reloaded["removed"]) == (
        ["2026-11", "2026-12"],
        ["2026-12"],
        [],
    )


async def test_a_key_removed_from_the_file_stops_verifying_even_a_token_verified_before(
    db_url: URL, tmp_path: Path
) -> None:
    old = key_pair(tmp_path, "ES256", name="old")
    new = key_pair(tmp_path, "ES256", name="new")
    keys = jwks_file(tmp_path, "ES256", {"2026-11": old, "2026-12": new})
    settings = production(
        db_url, jwt_algorithm="ES256", jwt_jwks_file=keys, jwt_jwks_reload_seconds=0
    )
    old_token, new_token = sign(old, "2026-11"), sign(new, "2026-12")

    async with http_to(settings, db_url) as http:
        first = await wallet_with(http, old_token)  # verified, and remembered
        jwks_file(tmp_path, "ES256", {"2026-12": new})  # the provider retires the old key
        again = await wallet_with(http, old_token)
        with_new = await wallet_with(http, new_token)

    assert first == with_new == SIGNED_IN
    assert refusal(again) == "The token is not valid: no key with kid '2026-11'"


async def test_a_file_that_cannot_be_used_keeps_the_last_good_keys_and_is_counted(
    db_url: URL, tmp_path: Path, json_lines: Lines
) -> None:
    old = key_pair(tmp_path, "ES256", name="old")
    new = key_pair(tmp_path, "ES256", name="new")
    keys = jwks_file(tmp_path, "ES256", {"2026-11": old})
    settings = production(
        db_url, jwt_algorithm="ES256", jwt_jwks_file=keys, jwt_jwks_reload_seconds=0
    )
    old_token, new_token = sign(old, "2026-11"), sign(new, "2026-12")

    async with http_to(settings, db_url) as http:
        keys.write_text('{"keys": [')  # cut short while being written
        broken = [await wallet_with(http, old_token) for _ in range(3)]
        after_broken = await scrape(http)
        keys.unlink()
        missing = [await wallet_with(http, old_token) for _ in range(3)]
        after_missing = await scrape(http)
        jwks_file(tmp_path, "ES256", {"2026-11": old, "2026-12": new})
        with_new = await wallet_with(http, new_token)
        after_fixed = await scrape(http)

    assert broken == missing == [SIGNED_IN] * 3
    # read once while it stays broken, once more when it goes missing
    assert value(after_broken, RELOADS, outcome="failed") == 1
    assert value(after_broken, STALE) == 1
    assert value(after_missing, RELOADS, outcome="failed") == 2
    assert value(after_missing, STALE) == 1
    assert with_new == SIGNED_IN
    assert value(after_fixed, RELOADS, outcome="loaded") == 1
    assert value(after_fixed, RELOADS, outcome="failed") == 2
    assert value(after_fixed, STALE) == 0
    warnings = json_lines.of("jwks_reload_failed")
    assert [(line["level"], line["kids"]) for line in warnings] == [("warning", ["2026-11"])] * 2
    assert warnings[0]["reason"].startswith(f"COINBOOKS_JWT_JWKS_FILE: {keys} is not a JWKS")
    assert warnings[1]["reason"] == (
        f"COINBOOKS_JWT_JWKS_FILE: cannot read {keys} (No such file or directory)"
    )


async def test_with_a_private_key_the_file_must_keep_its_public_key_and_may_rename_it(
    db_url: URL, tmp_path: Path, json_lines: Lines
) -> None:
    mine = key_pair(tmp_path, "ES256", name="mine")
    theirs = key_pair(tmp_path, "ES256", name="theirs")
    keys = jwks_file(tmp_path, "ES256", {"staging": mine})
    settings = production(
        db_url,
        jwt_algorithm="ES256",
        jwt_jwks_file=keys,
        jwt_private_key_file=mine.private_file,
        jwt_jwks_reload_seconds=0,
    )

    async with http_to(settings, db_url) as http:
        jwks_file(tmp_path, "ES256", {"theirs": theirs})  # the service's own key left out
        ours = issue_token(settings, "ana", [Role.VIEWER])
        kept = await wallet_with(http, ours)
        samples = await scrape(http)
        jwks_file(tmp_path, "ES256", {"theirs": theirs, "staging-2": mine})
        renamed = issue_token(settings, "ana", [Role.VIEWER])
        with_renamed = await wallet_with(http, renamed)

    assert jwt.get_unverified_header(ours)["kid"] == "staging"
    assert kept == with_renamed == SIGNED_IN
    assert value(samples, RELOADS, outcome="failed") == 1
    [failed] = json_lines.of("jwks_reload_failed")
    assert failed["reason"] == (
        "COINBOOKS_JWT_PRIVATE_KEY_FILE: its public key is not the one tokens are verified with"
    )
    assert jwt.get_unverified_header(renamed)["kid"] == "staging-2"


class Clock:
    """The keyring's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_file_is_looked_at_once_per_interval_and_read_only_when_it_changed(
    db_url: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr(auth, "_now", clock, raising=False)
    old = key_pair(tmp_path, "ES256", name="old")
    new = key_pair(tmp_path, "ES256", name="new")
    keys = jwks_file(tmp_path, "ES256", {"2026-11": old})
    settings = production(db_url, jwt_algorithm="ES256", jwt_jwks_file=keys)  # every 30 s
    unknown = sign(new, "2027-01")

    async def at(seconds: float, token: str) -> dict[str, object]:
        clock.now = 1000.0 + seconds
        return await wallet_with(http, token)

    async def reads() -> list[float]:
        """The file's reads after the start: loaded, unchanged, failed."""
        samples = await scrape(http)
        return [value(samples, RELOADS, outcome=outcome) for outcome in OUTCOMES]

    async with http_to(settings, db_url) as http:  # started at 1000 s: the file was read then
        jwks_file(tmp_path, "ES256", {"2026-11": old, "2026-12": new})
        too_soon = await at(29.9, sign(new, "2026-12"))
        reads_too_soon = await reads()
        published = await at(30, sign(new, "2026-12"))  # looked at: changed, read
        refused = [await at(31, unknown), await at(59, unknown)]
        reads_published = await reads()
        os.utime(keys, ns=(1, 1))  # touched: the same bytes, another mtime
        refused.append(await at(59.9, unknown))
        reads_touched_too_soon = await reads()
        refused += [await at(60, unknown), await at(61, unknown), await at(89.9, unknown)]
        reads_touched = await reads()  # looked at once, at 60 s: changed, read, the same keys
        refused += [await at(90, unknown), await at(125, unknown), await at(170, unknown)]
        reads_unchanged = await reads()  # looked at thrice since: not changed, not read

    assert refusal(too_soon) == "The token is not valid: no key with kid '2026-12'"
    assert reads_too_soon == [0, 0, 0]
    assert published == SIGNED_IN
    assert reads_published == reads_touched_too_soon == [1, 0, 0]
    assert reads_touched == reads_unchanged == [1, 1, 0]
    assert [refusal(reply) for reply in refused] == [
        "The token is not valid: no key with kid '2027-01'"
    ] * 9
