"""Bearer tokens: JWTs carrying the user and their roles, signed with a shared key (HS256) or
by an identity provider's private key (RS256, ES256, EdDSA) and checked against its public key
or its JWKS; the audience, issuer and expiry are checked whatever the algorithm."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.policy.access import Principal, Role
from api.settings import Environment, Settings

HMAC_ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
"""An HS256 key in production: 256 bits at least (RFC 7518, 3.2)."""
PUBLIC_KEY_TYPES = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)


class InvalidToken(Exception):
    """The Authorization header holds no valid token; ``reason`` says why, for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenKeyError(Exception):
    """The token settings cannot work: one line, naming the setting to fix."""


@dataclass(frozen=True)
class TokenKeys:
    """What verifies tokens (and, where configured, signs them), loaded once at startup."""

    algorithm: str
    verifying: Any = None
    """The HS256 secret or the public key; ``None`` when the keys come from a JWKS."""
    jwks: dict[str | None, jwt.PyJWK] = field(default_factory=dict)
    """The JWKS's keys for the configured algorithm, by ``kid``."""
    signing: Any = None
    """What ``issue_token`` signs with: the HS256 secret or the private key, if one is set."""
    kid: str | None = None
    """The JWKS ``kid`` of the private key, put in the header of the tokens it signs."""

    def key_for(self, token: str) -> Any:
        if not self.jwks:
            return self.verifying
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self.jwks) == 1:
            return next(iter(self.jwks.values()))
        if kid not in self.jwks:
            raise jwt.InvalidTokenError(f"no key with kid {kid!r}")
        return self.jwks[kid]


def token_keys(settings: Settings) -> TokenKeys:
    """The keys of these settings, or :class:`TokenKeyError` (the service refuses to start)."""
    return _load_keys(
        settings.environment,
        settings.jwt_algorithm,
        settings.jwt_secret,
        settings.jwt_public_key_file,
        settings.jwt_jwks_file,
        settings.jwt_private_key_file,
    )


@lru_cache(maxsize=16)
def _load_keys(
    environment: Environment,
    algorithm: str,
    secret: str,
    public_key_file: Path | None,
    jwks_file: Path | None,
    private_key_file: Path | None,
) -> TokenKeys:
    if algorithm == HMAC_ALGORITHM:
        if public_key_file or jwks_file or private_key_file:
            raise TokenKeyError(
                "COINBOOKS_JWT_ALGORITHM is HS256: the public, JWKS and private key files are "
                "for RS256, ES256 or EdDSA"
            )
        weak = len(secret.encode()) < MIN_SECRET_BYTES
        if weak and environment is Environment.PRODUCTION:
            raise TokenKeyError(
                f"COINBOOKS_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (256 bits) "
                "of random in production"
            )
        return TokenKeys(algorithm, verifying=secret, signing=secret)
    if (public_key_file is None) == (jwks_file is None):
        raise TokenKeyError(
            f"COINBOOKS_JWT_ALGORITHM is {algorithm}: set exactly one of "
            "COINBOOKS_JWT_PUBLIC_KEY_FILE and COINBOOKS_JWT_JWKS_FILE"
        )
    verifying = _public_key(algorithm, public_key_file) if public_key_file else None
    jwks = _jwks(algorithm, jwks_file) if jwks_file else {}
    if private_key_file is None:
        return TokenKeys(algorithm, verifying=verifying, jwks=jwks)
    signing = _private_key(algorithm, private_key_file)
    kid = _kid_of(signing, verifying, jwks)
    return TokenKeys(algorithm, verifying=verifying, jwks=jwks, signing=signing, kid=kid)


def _read(path: Path, setting: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TokenKeyError(f"{setting}: cannot read {path} ({error.strerror})") from None


def _checked(algorithm: str, key: Any, setting: str) -> Any:
    """``key`` prepared for ``algorithm`` (its type and curve checked) and long enough."""
    method = jwt.get_algorithm_by_name(algorithm)
    try:
        prepared = method.prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError) as error:
        raise TokenKeyError(f"{setting}: not a key for {algorithm} ({error})") from None
    too_short = method.check_key_length(prepared)
    if too_short:
        raise TokenKeyError(f"{setting}: {too_short}")
    return prepared


def _public_key(algorithm: str, path: Path) -> Any:
    setting = "COINBOOKS_JWT_PUBLIC_KEY_FILE"
    key = _checked(algorithm, _read(path, setting), setting)
    if not isinstance(key, PUBLIC_KEY_TYPES):
        raise TokenKeyError(f"{setting}: {path} holds a private key; give the public key")
    return key


def _jwks(algorithm: str, path: Path) -> dict[str | None, jwt.PyJWK]:
    setting = "COINBOOKS_JWT_JWKS_FILE"
    try:
        found = jwt.PyJWKSet.from_json(_read(path, setting).decode())
    except (jwt.PyJWTError, ValueError, AttributeError) as error:
        raise TokenKeyError(f"{setting}: {path} is not a JWKS ({error})") from None
    keys = {key.key_id: key for key in found if key.algorithm_name == algorithm}
    if not keys:
        raise TokenKeyError(f"{setting}: {path} has no key for {algorithm}")
    for key in keys.values():
        _checked(algorithm, key.key, setting)
    return keys


def _private_key(algorithm: str, path: Path) -> Any:
    setting = "COINBOOKS_JWT_PRIVATE_KEY_FILE"
    try:
        key = serialization.load_pem_private_key(_read(path, setting), password=None)
    except (ValueError, TypeError) as error:
        raise TokenKeyError(f"{setting}: {path} is not a PEM private key ({error})") from None
    return _checked(algorithm, key, setting)


def _spki(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _kid_of(signing: Any, verifying: Any, jwks: dict[str | None, jwt.PyJWK]) -> str | None:
    """The ``kid`` under which the service's own tokens are verified; the private key must
    belong to the public key or to one of the JWKS's keys, or tokens it signs would fail."""
    mine = _spki(signing.public_key())
    if verifying is not None and _spki(verifying) == mine:
        return None
    for kid, key in jwks.items():
        if _spki(key.key) == mine:
            return kid
    raise TokenKeyError(
        "COINBOOKS_JWT_PRIVATE_KEY_FILE: its public key is not the one tokens are verified with"
    )


def issue_token(
    settings: Settings, user_id: str, roles: list[Role], ttl: timedelta | None = None
) -> str:
    """A token for ``user_id``; with RS256, ES256 or EdDSA only when a private key is set
    (else :class:`TokenKeyError`: the identity provider issues them)."""
    check_user_id(user_id)
    keys = token_keys(settings)
    if keys.signing is None:
        raise TokenKeyError(
            f"COINBOOKS_JWT_PRIVATE_KEY_FILE is not set: with {keys.algorithm}, tokens are "
            "issued by the identity provider"
        )
    now = datetime.now(UTC)
    claims = {
        "sub": user_id,
        "roles": [str(role) for role in roles],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + (ttl or timedelta(minutes=settings.token_ttl_minutes)),
    }
    headers = {"kid": keys.kid} if keys.kid else None
    return jwt.encode(claims, keys.signing, algorithm=keys.algorithm, headers=headers)


VERIFIED_TOKENS = 4096
"""Tokens verified in this process and remembered until they expire, at most this many: a
client sends the same token with every request, and checking its signature each time was the
largest single cost of a gift's request after GraphQL itself (docs/performance.md)."""


@dataclass(frozen=True, slots=True)
class _Verified:
    keys: TokenKeys
    """The keys that verified it: under other keys (other settings), it is checked again."""
    audience: str | None
    issuer: str | None
    principal: Principal
    expires: float
    """Its ``exp``, in seconds since the epoch: from then on it is expired like any other."""


_verified: OrderedDict[str, _Verified] = OrderedDict()


def _clock() -> float:
    return time.time()


def principal_from_token(settings: Settings, token: str) -> Principal:
    """The principal a valid token names, or :class:`InvalidToken`. A token verified before,
    under the same keys, audience and issuer, is not verified again until it expires."""
    keys = token_keys(settings)
    known = _verified.get(token)
    if (
        known is not None
        and known.keys is keys
        and (known.audience, known.issuer) == (settings.jwt_audience, settings.jwt_issuer)
    ):
        if _clock() >= known.expires:
            del _verified[token]
            raise InvalidToken("The token has expired")
        _verified.move_to_end(token)
        return known.principal
    principal, expires = _verify(settings, keys, token)
    _verified[token] = _Verified(
        keys, settings.jwt_audience, settings.jwt_issuer, principal, expires
    )
    if len(_verified) > VERIFIED_TOKENS:
        _verified.popitem(last=False)
    return principal


def _verify(settings: Settings, keys: TokenKeys, token: str) -> tuple[Principal, float]:
    """The token's principal and expiry, its signature and every claim checked."""
    try:
        claims = jwt.decode(
            token,
            keys.key_for(token),
            algorithms=[keys.algorithm],
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
    return Principal(user_id, roles), float(claims["exp"])


def principal_from_header(settings: Settings, authorization: str | None) -> Principal | None:
    """``None`` when there is no Authorization header; :class:`InvalidToken` when it is bad."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Send the token as 'Authorization: Bearer <token>'")
    return principal_from_token(settings, token.strip())
