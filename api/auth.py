"""Bearer tokens: JWTs carrying the user and their roles, signed with a shared key (HS256) or
by an identity provider's private key (RS256, ES256, EdDSA) and checked against its public key
or its JWKS; the audience, issuer and expiry are checked whatever the algorithm.

A JWKS file is looked at again while the service runs (:class:`TokenKeyring`), so that the
provider's keys rotate without a restart: a key added to the file verifies, a key removed from
it stops verifying, and a file that cannot be used keeps the last good keys."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt
import structlog
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
MAX_JWKS_BYTES = 1024 * 1024
"""A JWKS file larger than this is refused unread (a provider's set is a few kilobytes): the
file is read on the event loop, so what one read costs must stay small."""
RELOAD_OUTCOMES = ("loaded", "unchanged", "failed")
"""What a read of a changed JWKS file came to: new keys in effect, the same keys (the file was
touched or rewritten alike), or a file that cannot be used (the last good keys stay)."""

log = structlog.stdlib.get_logger("coinbooks.auth")


class InvalidToken(Exception):
    """The Authorization header holds no valid token; ``reason`` says why, for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenKeyError(Exception):
    """The token settings cannot work: one line, naming the setting to fix."""


@dataclass(frozen=True)
class TokenKeys:
    """What verifies tokens (and, where configured, signs them): one generation of the keys,
    never changed; a JWKS file read again gives a new one (:class:`TokenKeyring`)."""

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


Signature = tuple[int, int, int, int, int]
"""What says a file changed without reading it: device, inode, size, mtime and ctime (ns)."""


@dataclass(frozen=True)
class JwksFile:
    """The JWKS file of the settings, and what its keys are checked against when it is read."""

    path: Path
    algorithm: str
    signing: Any = None
    """The private key of ``COINBOOKS_JWT_PRIVATE_KEY_FILE``: the file must hold its public key."""

    def signature(self) -> Signature | None:
        """The file as ``stat`` sees it (through symlinks), ``None`` when it cannot be seen."""
        try:
            return _signature(os.stat(self.path))
        except OSError:
            return None

    def read(self) -> tuple[Signature, bytes]:
        """The file's bytes and its signature taken before they were read (a change after it
        changes the signature), or :class:`TokenKeyError`."""
        setting = "COINBOOKS_JWT_JWKS_FILE"
        try:  # not blocking on a pipe: this runs on the event loop
            with os.fdopen(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:
                found = os.fstat(file.fileno())
                regular = stat.S_ISREG(found.st_mode)
                raw = file.read(MAX_JWKS_BYTES + 1) if regular else b""
        except OSError as error:
            raise TokenKeyError(f"{setting}: cannot read {self.path} ({error.strerror})") from None
        if not regular:
            raise TokenKeyError(f"{setting}: {self.path} is not a file")
        if len(raw) > MAX_JWKS_BYTES:
            raise TokenKeyError(f"{setting}: {self.path} is larger than {MAX_JWKS_BYTES} bytes")
        return _signature(found), raw

    def keys(self, raw: bytes) -> TokenKeys:
        """The keys ``raw`` holds, checked as at the start, or :class:`TokenKeyError`."""
        jwks = _jwks(self.algorithm, self.path, raw)
        if self.signing is None:
            return TokenKeys(self.algorithm, jwks=jwks)
        kid = _kid_of(self.signing, None, jwks)
        return TokenKeys(self.algorithm, jwks=jwks, signing=self.signing, kid=kid)


def _signature(found: os.stat_result) -> Signature:
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)


def _now() -> float:
    return time.monotonic()


class TokenKeyring:
    """The token keys in effect. Keys from a PEM file or a secret are those of the start. Keys
    from a JWKS file: the file is looked at (``stat``) when a token arrives ``reload_seconds``
    or more after the last look, and read only when it changed; its keys then replace these,
    or, when it cannot be read or is not a JWKS the service would start with, these stay, a
    warning is logged and the failure counted. Each generation of keys is a :class:`TokenKeys`
    of its own, so that a token verified under one is checked again under the next.

    A look runs on the event loop without awaiting, so the requests it serves concurrently see
    one generation or the next, never a mix; a thread that finds another one looking goes on
    with the keys in effect."""

    def __init__(
        self, keys: TokenKeys, source: JwksFile | None = None, reload_seconds: float = 0.0
    ) -> None:
        self._keys = keys
        self.source = source
        self.reload_seconds = reload_seconds
        self.reloads: Counter[str] = Counter({outcome: 0 for outcome in RELOAD_OUTCOMES})
        """Reads of the changed file after the start, by outcome (``RELOAD_OUTCOMES``)."""
        self.stale = False
        """Whether the file, when last read, could not be used (the last good keys serve)."""
        self._seen: Signature | None = None
        self._digest = b""
        self._looked_at = _now()
        self._looking = threading.Lock()

    @classmethod
    def from_file(cls, source: JwksFile, reload_seconds: float) -> TokenKeyring:
        """The keys of ``source`` as it is now, or :class:`TokenKeyError` (refusing the start)."""
        signature, raw = source.read()
        ring = cls(source.keys(raw), source, reload_seconds)
        ring._seen, ring._digest = signature, hashlib.sha256(raw).digest()
        return ring

    def keys(self) -> TokenKeys:
        """The keys in effect, after a look at the JWKS file when one is due."""
        if self.source is not None and _now() - self._looked_at >= self.reload_seconds:
            self._look(self.source)
        return self._keys

    def _look(self, source: JwksFile) -> None:
        if not self._looking.acquire(blocking=False):
            return  # another thread is looking: the keys in effect serve meanwhile
        try:
            self._looked_at = _now()
            signature = source.signature()
            if signature != self._seen:
                self._reload(source, signature)
        finally:
            self._looking.release()

    def _reload(self, source: JwksFile, seen: Signature | None) -> None:
        """Reads the changed file; as long as it stays as it is, it is not read again."""
        try:
            self._seen, raw = source.read()
        except TokenKeyError as error:
            self._seen = seen
            self._failed(source, str(error))
            return
        digest = hashlib.sha256(raw).digest()
        if digest == self._digest:
            self.stale = False
            self.reloads["unchanged"] += 1
            return
        try:
            keys = source.keys(raw)
        except TokenKeyError as error:
            self._failed(source, str(error))
            return
        self._loaded(source, keys, digest)

    def _failed(self, source: JwksFile, reason: str) -> None:
        self.stale = True
        self.reloads["failed"] += 1
        log.warning(
            "jwks_reload_failed", file=str(source.path), reason=reason, kids=_kids(self._keys)
        )

    def _loaded(self, source: JwksFile, keys: TokenKeys, digest: bytes) -> None:
        before = _kids(self._keys)
        self._keys, self._digest, self.stale = keys, digest, False
        self.reloads["loaded"] += 1
        after = _kids(keys)
        log.info(
            "jwks_reloaded",
            file=str(source.path),
            kids=after,
            added=[kid for kid in after if kid not in before],
            removed=[kid for kid in before if kid not in after],
        )


def _kids(keys: TokenKeys) -> list[str | None]:
    return sorted(keys.jwks, key=str)


def token_keys(settings: Settings) -> TokenKeys:
    """The keys in effect for these settings, or :class:`TokenKeyError` (the service refuses
    to start)."""
    return token_keyring(settings).keys()


def token_keyring(settings: Settings) -> TokenKeyring:
    """What holds the keys of these settings (one per process and settings), or
    :class:`TokenKeyError`."""
    return _load_keys(
        settings.environment,
        settings.jwt_algorithm,
        settings.jwt_secret,
        settings.jwt_public_key_file,
        settings.jwt_jwks_file,
        settings.jwt_private_key_file,
        settings.jwt_jwks_reload_seconds,
    )


@lru_cache(maxsize=16)
def _load_keys(
    environment: Environment,
    algorithm: str,
    secret: str,
    public_key_file: Path | None,
    jwks_file: Path | None,
    private_key_file: Path | None,
    reload_seconds: float,
) -> TokenKeyring:
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
        return TokenKeyring(TokenKeys(algorithm, verifying=secret, signing=secret))
    if (public_key_file is None) == (jwks_file is None):
        raise TokenKeyError(
            f"COINBOOKS_JWT_ALGORITHM is {algorithm}: set exactly one of "
            "COINBOOKS_JWT_PUBLIC_KEY_FILE and COINBOOKS_JWT_JWKS_FILE"
        )
    signing = _private_key(algorithm, private_key_file) if private_key_file else None
    if jwks_file is not None:
        return TokenKeyring.from_file(JwksFile(jwks_file, algorithm, signing), reload_seconds)
    assert public_key_file is not None
    verifying = _public_key(algorithm, public_key_file)
    if signing is None:
        return TokenKeyring(TokenKeys(algorithm, verifying=verifying))
    kid = _kid_of(signing, verifying, {})
    return TokenKeyring(TokenKeys(algorithm, verifying=verifying, signing=signing, kid=kid))


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


def _jwks(algorithm: str, path: Path, raw: bytes) -> dict[str | None, jwt.PyJWK]:
    setting = "COINBOOKS_JWT_JWKS_FILE"
    try:
        found = jwt.PyJWKSet.from_json(raw.decode())
    except (jwt.PyJWTError, ValueError, AttributeError, TypeError) as error:
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
    """The keys that verified it: under other keys (other settings, or the JWKS file read
    again), it is checked again."""
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
    under the same keys, audience and issuer, is not verified again until it expires: keys
    read again from the JWKS file are other keys, under which it is verified again."""
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
