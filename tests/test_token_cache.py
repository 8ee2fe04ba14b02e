"""A bearer token verified once is remembered by the service until it expires, under the keys,
audience and issuer that verified it: the same answers as verifying it every time."""

from __future__ import annotations

import pytest

from accounting.policy.access import Principal, Role
from api import auth
from api.auth import InvalidToken, issue_token, principal_from_token
from api.settings import Settings


def settings(**changes: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url="postgresql://nowhere.invalid/coinbooks",
        environment="development",  # type: ignore[arg-type]
        **changes,  # type: ignore[arg-type]
    )


def test_a_remembered_token_names_its_principal_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ours = settings()
    token = issue_token(ours, "ana", [Role("viewer")])
    ana = Principal("ana", frozenset({Role("viewer")}))
    assert principal_from_token(ours, token) == ana
    assert principal_from_token(ours, token) == ana  # remembered
    expires = auth._verified[token].expires

    monkeypatch.setattr(auth, "_clock", lambda: expires)
    with pytest.raises(InvalidToken, match="expired"):
        principal_from_token(ours, token)
    assert token not in auth._verified


def test_a_remembered_token_is_checked_again_under_other_keys_audience_or_issuer() -> None:
    ours = settings(jwt_secret="a-secret-of-ours-that-is-long-enough-0123456789")
    token = issue_token(ours, "ana", [Role("viewer")])
    assert principal_from_token(ours, token).user_id == "ana"

    for other in (
        settings(jwt_secret="another-secret-that-is-long-enough-0123456789abc"),
        settings(
            jwt_secret="a-secret-of-ours-that-is-long-enough-0123456789", jwt_audience="other"
        ),
        settings(jwt_secret="a-secret-of-ours-that-is-long-enough-0123456789", jwt_issuer="other"),
    ):
        with pytest.raises(InvalidToken, match="not valid"):
            principal_from_token(other, token)


def test_a_token_changed_by_one_character_is_not_taken_for_a_remembered_one() -> None:
    ours = settings()
    token = issue_token(ours, "ana", [Role("viewer")])
    assert principal_from_token(ours, token).user_id == "ana"
    header, claims, signature = token.split(".")
    forged = ".".join((header, claims, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")))
    with pytest.raises(InvalidToken, match="not valid"):
        principal_from_token(ours, forged)
