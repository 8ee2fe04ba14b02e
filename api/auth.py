"""Bearer tokens: JWTs signed with the configured key, carrying the user and their roles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.policy.access import Principal, Role
from api.settings import Settings


class InvalidToken(Exception):
    """The Authorization header holds no valid token; ``reason`` says why, for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_token(
    settings: Settings, user_id: str, roles: list[Role], ttl: timedelta | None = None
) -> str:
    check_user_id(user_id)
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "roles": [str(role) for role in roles],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (ttl or timedelta(minutes=settings.token_ttl_minutes)),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)


def principal_from_token(settings: Settings, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[settings.jwt_algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["sub", "exp", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired") from None
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"The token is not valid: {error}") from None
    try:
        user_id = check_user_id(str(claims["sub"]))
        roles = frozenset(Role(role) for role in claims.get("roles", []))
    except (LedgerError, ValueError):
        raise InvalidToken("The token's subject or roles are not valid") from None
    return Principal(user_id, roles)


def principal_from_header(settings: Settings, authorization: str | None) -> Principal | None:
    """``None`` when there is no Authorization header; :class:`InvalidToken` when it is bad."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Send the token as 'Authorization: Bearer <token>'")
    return principal_from_token(settings, token.strip())
