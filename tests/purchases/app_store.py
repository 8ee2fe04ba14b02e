"""A certificate chain of the tests' own, shaped like the App Store's (a root CA, an intermediate
carrying Apple's WWDR marker 1.2.840.113635.100.6.2.1, a leaf carrying the App Store receipt
signing marker 1.2.840.113635.100.6.11.1, all on P-256), and the App Store's signed data made
with it: transactions (JWS, ES256, the chain in ``x5c``) and server notifications (V2)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from accounting.purchases.account_tokens import account_token

WWDR_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
RECEIPT_SIGNING_MARKER = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
BUNDLE_ID = "com.coinbooks.app"
APP_APPLE_ID = 1234567890
PRODUCTS = {"com.coinbooks.coins350": "coins_350", "com.coinbooks.coins17500": "coins_17500"}


@dataclass(frozen=True, slots=True)
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def x5c(self) -> str:
        return base64.b64encode(self.der).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    common_name: str,
    *,
    issuer: Issued | None = None,
    ca: bool,
    marker: x509.ObjectIdentifier | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Issued:
    """A certificate for a new P-256 key, signed by ``issuer`` (self-signed without one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime(2020, 1, 1, tzinfo=UTC)
    end = not_after or datetime(2040, 1, 1, tzinfo=UTC)
    signer = issuer.key if issuer is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer is not None else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    )
    if marker is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(marker, b"\x05\x00"), critical=False
        )
    return Issued(key, builder.sign(signer, hashes.SHA256()))


@dataclass
class AppStore:
    """A test App Store: its root (what the service trusts), intermediate and signing leaf."""

    root: Issued = field(default_factory=lambda: issue("Test Root CA", ca=True))
    intermediate: Issued | None = None
    leaf: Issued | None = None

    def __post_init__(self) -> None:
        if self.intermediate is None:
            self.intermediate = issue(
                "Test WWDR Intermediate", issuer=self.root, ca=True, marker=WWDR_MARKER
            )
        if self.leaf is None:
            self.leaf = issue(
                "Test App Store Signing",
                issuer=self.intermediate,
                ca=False,
                marker=RECEIPT_SIGNING_MARKER,
            )

    def root_pem(self) -> bytes:
        return self.root.certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, payload: dict[str, Any]) -> str:
        """``payload`` as the App Store signs it: ES256 by the leaf, the chain in ``x5c``."""
        assert self.leaf is not None and self.intermediate is not None
        return jwt.encode(
            payload,
            self.leaf.key,
            algorithm="ES256",
            headers={"x5c": [self.leaf.x5c, self.intermediate.x5c, self.root.x5c]},
        )

    def transaction(
        self, transaction_id: str = "2000000123456789", *, buyer: str | None = "ana", **fields: Any
    ) -> str:
        """A transaction bought by ``buyer``: its ``appAccountToken`` is theirs (None: none)."""
        return self.sign(transaction_payload(transaction_id, buyer=buyer, **fields))

    def notification(
        self,
        notification_type: str,
        signed_transaction: str,
        *,
        notification_uuid: str | None = None,
        bundle_id: str = BUNDLE_ID,
        environment: str = "Sandbox",
    ) -> str:
        """An App Store Server Notification V2's ``signedPayload``."""
        return self.sign(
            {
                "notificationType": notification_type,
                "notificationUUID": notification_uuid or str(uuid.uuid4()),
                "version": "2.0",
                "signedDate": millis(datetime.now(UTC)),
                "data": {
                    "bundleId": bundle_id,
                    "appAppleId": APP_APPLE_ID,
                    "environment": environment,
                    "signedTransactionInfo": signed_transaction,
                },
            }
        )


def millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def transaction_payload(
    transaction_id: str, *, buyer: str | None = "ana", **fields: Any
) -> dict[str, Any]:
    """A consumable's transaction as the App Store signs it (5.49 USD, the iOS price of 350
    coins), bought by ``buyer``: the app set their account token (under the default namespace)
    on the purchase; None, no token."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "originalTransactionId": transaction_id,
        "bundleId": BUNDLE_ID,
        "productId": "com.coinbooks.coins350",
        "purchaseDate": millis(now - timedelta(seconds=5)),
        "originalPurchaseDate": millis(now - timedelta(seconds=5)),
        "quantity": 1,
        "type": "Consumable",
        "inAppOwnershipType": "PURCHASED",
        "signedDate": millis(now),
        "environment": "Sandbox",
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "currency": "USD",
        "price": 5490,
    }
    if buyer is not None:
        payload["appAccountToken"] = str(account_token(buyer))
    payload.update(fields)
    return payload


def decoded(signed: str) -> dict[str, Any]:
    """What a signed object says, unverified (for the tests' own checks)."""
    body = signed.split(".")[1]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return value
