"""What the payout flow keeps that must not be readable from a copy of the database: creators'
TOTP secrets, sealed with AES-256-GCM, and payout methods' fingerprints, keyed with HMAC-SHA256.

Both keys are derived (HKDF-SHA256) from one 32-byte secrets key the process is given
(``COINBOOKS_SECRETS_KEY``); the domain never holds a key of its own. A sealed secret is bound to
its creator (the creator id is the cipher's associated data), so a secret copied to another
creator's row does not open."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SEALED_PREFIX = "aesgcm1:"
"""How a sealed secret starts: the database refuses any other form (0016)."""
FINGERPRINT_PREFIX = "hmac1:"
"""How a keyed fingerprint starts: the database refuses any other form (0016)."""
KEY_BYTES = 32
_NONCE_BYTES = 12


class SecretsKeyError(ValueError):
    """The secrets key is not 32 bytes in URL-safe base64, or a sealed value does not open."""


def decode_key(encoded: str) -> bytes:
    """The 32 bytes of a key given in URL-safe base64 (as ``Fernet.generate_key()`` prints)."""
    try:
        raw = base64.b64decode(encoded.encode("ascii"), altchars=b"-_", validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise SecretsKeyError("the secrets key is not URL-safe base64") from error
    if len(raw) != KEY_BYTES:
        raise SecretsKeyError(f"the secrets key is {len(raw)} bytes, not {KEY_BYTES}")
    return raw


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(key)


@dataclass(frozen=True, slots=True)
class PayoutKeys:
    """The two keys of the payout flow, derived from the process's secrets key."""

    sealing_key: bytes
    fingerprint_key: bytes

    @classmethod
    def from_secrets_key(cls, encoded: str) -> PayoutKeys:
        key = decode_key(encoded)
        return cls(
            sealing_key=_derive(key, b"coinbooks/payouts/totp-secret"),
            fingerprint_key=_derive(key, b"coinbooks/payouts/method-fingerprint"),
        )

    def seal(self, creator_id: str, secret: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.sealing_key).encrypt(nonce, secret.encode(), creator_id.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def unseal(self, creator_id: str, sealed: str) -> str:
        if not sealed.startswith(SEALED_PREFIX):
            raise SecretsKeyError("the second factor's secret is not sealed")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(SEALED_PREFIX))
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return AESGCM(self.sealing_key).decrypt(nonce, body, creator_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise SecretsKeyError(
                "the second factor's secret does not open with this secrets key"
            ) from error

    def fingerprint_of_digest(self, digest: str) -> str:
        """The keyed fingerprint of a method's SHA-256 digest (hex): what is stored."""
        keyed = hmac.new(self.fingerprint_key, digest.encode("ascii"), hashlib.sha256)
        return FINGERPRINT_PREFIX + keyed.hexdigest()

    def fingerprint(self, canonical: str) -> str:
        """The keyed fingerprint of a method's normalised details: HMAC-SHA256 of their
        SHA-256, so that fingerprints stored unkeyed before 0016 could be keyed in place."""
        return self.fingerprint_of_digest(hashlib.sha256(canonical.encode()).hexdigest())
