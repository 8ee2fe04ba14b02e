"""Payouts over GraphQL through the real ASGI app over HTTP: payout methods, the second factor,
the KYC flag, requestPayout with each of its error codes, the finance actions with theirs,
what creators and finance read, the audit log, and who may do each."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest

from schema.nodes import global_id, pk_of
from tests.conftest import GraphQLClient
from tests.gifts.streaming import (
    ADMIN,
    CREATOR,
    FINANCE,
    SUPPORT,
    buy_coins,
    data,
    earnings,
    error_code,
    gift_sent,
    set_frozen,
    start_stream,
    the_only_payload_error,
)
from tests.payouts.clock import TOTP_CLOCK

REGISTER_METHOD = """
mutation Register($input: RegisterPayoutMethodInput!) {
  registerPayoutMethod(input: $input) {
    payoutMethod { id kind masked holderName }
    errors { code message field }
  }
}
"""

ENROL = """
mutation Enrol { enrolSecondFactor { provisioningUri errors { code message field } } }
"""

CONFIRM = """
mutation Confirm($input: ConfirmSecondFactorInput!) {
  confirmSecondFactor(input: $input) { confirmed errors { code message field } }
}
"""

SET_KYC = """
mutation SetKyc($input: SetKycVerifiedInput!) {
  setKycVerified(input: $input) {
    kyc { userId verified reason changedBy }
    errors { code message field }
  }
}
"""

PAYOUT_FIELDS = """
id creatorId status diamondsRequested diamonds amount { amount currency }
method { id kind masked }
history { status actor reason providerReference entryId }
"""

REQUEST_PAYOUT = f"""
mutation RequestPayout($input: RequestPayoutInput!) {{
  requestPayout(input: $input) {{
    payout {{ {PAYOUT_FIELDS} }}
    replayed
    errors {{ code message field }}
  }}
}}
"""

ACTIONS = {
    "reject": "rejectPayout",
    "sent": "markPayoutSent",
    "paid": "markPayoutPaid",
    "failed": "markPayoutFailed",
    "returned": "markPayoutReturned",
}


def action_mutation(field: str) -> str:
    return f"""
mutation Act($input: PayoutActionInput!) {{
  {field}(input: $input) {{
    payout {{ {PAYOUT_FIELDS} }}
    replayed
    errors {{ code message field }}
  }}
}}
"""


PAYOUTS = f"""
query Payouts($creatorId: String, $first: Int!) {{
  payouts(creatorId: $creatorId, first: $first) {{
    edges {{ node {{ {PAYOUT_FIELDS} }} }}
    pageInfo {{ hasNextPage }}
  }}
}}
"""

PAYOUT = f"query Payout($id: ID!) {{ payout(id: $id) {{ {PAYOUT_FIELDS} }} }}"

IN_FLIGHT = """
query InFlight { payoutsInFlight(first: 10) { edges { node { id status creatorId } } } }
"""

CONTROLS = """
query Controls($creatorId: String) {
  payoutControls(creatorId: $creatorId) {
    creatorId kycVerified secondFactorConfirmed
    minimum { amount currency } dailyCap { amount currency } requestedToday { amount currency }
  }
}
"""

METHODS = "query Methods($creatorId: String) { payoutMethods(creatorId: $creatorId) { id masked } }"

AUDIT = """
query Audit($subject: String) {
  auditLog(subject: $subject, first: 10) { edges { node { actor action subject reason } } }
}
"""


async def bo_earns_4000_diamonds(gql: GraphQLClient) -> None:
    """Ana buys 7,000 coins and sends Bo four Galaxies: 4,000 diamonds, worth $20.00."""
    await buy_coins(gql, "ana", "coins_7000")
    stream = await start_stream(gql, "bo")
    await gift_sent(gql, stream, "galaxy", 4)
    await earnings(gql, "bo")  # released on read (no hold in tests)


async def set_kyc(gql: GraphQLClient, user: str, verified: bool = True) -> dict[str, Any]:
    variables = {"input": {"userId": user, "verified": verified, "reason": "passport checked"}}
    payload: dict[str, Any] = data(
        await gql(SET_KYC, variables, user="adam", roles=ADMIN), "setKycVerified"
    )
    return payload


async def enrol(gql: GraphQLClient, user: str = "bo") -> str:
    payload = data(await gql(ENROL, user=user, roles=CREATOR), "enrolSecondFactor")
    assert payload["errors"] == [], payload
    secret: str = pyotp.parse_uri(payload["provisioningUri"]).secret
    return secret


async def confirm(gql: GraphQLClient, code: str, user: str = "bo") -> dict[str, Any]:
    reply = await gql(CONFIRM, {"input": {"totpCode": code}}, user=user, roles=CREATOR)
    payload: dict[str, Any] = data(reply, "confirmSecondFactor")
    return payload


async def register(
    gql: GraphQLClient, secret: str, user: str = "bo", **fields: Any
) -> dict[str, Any]:
    """Register a bank account (or what ``fields`` say) with a fresh code of ``secret``."""
    method = {
        "kind": "BANK_ACCOUNT",
        "holderName": "Bo Example",
        "accountNumber": "0001 2345 6789",
        "routingNumber": "021000021",
    }
    method.update(fields)
    if "totpCode" not in fields:  # a code given is sent as is; the clock does not move
        method["totpCode"] = TOTP_CLOCK.next_code(secret)
    reply = await gql(REGISTER_METHOD, {"input": method}, user=user, roles=CREATOR)
    payload: dict[str, Any] = data(reply, "registerPayoutMethod")
    return payload


async def second_factor_of(gql: GraphQLClient, user: str = "bo") -> str:
    """Enrol and confirm a second factor for ``user``: its secret."""
    secret = await enrol(gql, user)
    assert (await confirm(gql, TOTP_CLOCK.next_code(secret), user))["confirmed"] is True
    return secret


async def ready_bo(gql: GraphQLClient) -> tuple[str, str]:
    """Bo with 4,000 diamonds, verified, a confirmed second factor, a bank account:
    (TOTP secret, payout method id)."""
    await bo_earns_4000_diamonds(gql)
    assert (await set_kyc(gql, "bo"))["errors"] == []
    secret = await second_factor_of(gql)
    method = await register(gql, secret)
    return secret, method["payoutMethod"]["id"]


async def request(
    gql: GraphQLClient,
    secret: str,
    method_id: str,
    diamonds: str | int = "2000",
    key: str = "bo-payout-0001",
    *,
    code: str | None = None,
    user: str = "bo",
) -> dict[str, Any]:
    variables = {
        "input": {
            "idempotencyKey": key,
            "diamonds": str(diamonds),
            "payoutMethodId": method_id,
            "totpCode": code or TOTP_CLOCK.next_code(secret),
        }
    }
    payload: dict[str, Any] = data(
        await gql(REQUEST_PAYOUT, variables, user=user, roles=CREATOR), "requestPayout"
    )
    return payload


async def act(
    gql: GraphQLClient,
    what: str,
    payout_id: str,
    key: str | None = None,
    reason: str = "",
    reference: str | None = None,
) -> dict[str, Any]:
    field = ACTIONS[what]
    variables = {
        "input": {
            "payoutId": payout_id,
            "idempotencyKey": key or f"fiona-{what}-{payout_id}",
            "reason": reason,
            "providerReference": reference,
        }
    }
    reply = await gql(action_mutation(field), variables, user="fiona", roles=FINANCE)
    payload: dict[str, Any] = data(reply, field)
    return payload


# --- the creator's set-up -----------------------------------------------------------------------


async def test_bo_registers_a_bank_account_and_sees_it_only_masked(gql: GraphQLClient) -> None:
    secret = await second_factor_of(gql)
    payload = await register(gql, secret)
    again = await register(gql, secret, accountNumber="000123456789")

    assert payload["errors"] == []
    assert payload["payoutMethod"] == {
        "id": global_id("PayoutMethod", 1),
        "kind": "BANK_ACCOUNT",
        "masked": "****6789",
        "holderName": "Bo Example",
    }
    assert again["payoutMethod"]["id"] == global_id("PayoutMethod", 1)  # spaces aside
    paypal = await register(
        gql,
        secret,
        kind="PAYPAL",
        accountNumber=None,
        routingNumber=None,
        paypalEmail="bo@example.com",
    )
    assert paypal["payoutMethod"]["masked"] == "b***@example.com"
    mine = data(await gql(METHODS, user="bo", roles=CREATOR), "payoutMethods")
    by_support = data(
        await gql(METHODS, {"creatorId": "bo"}, user="sue", roles=SUPPORT), "payoutMethods"
    )
    assert mine == by_support
    assert [m["masked"] for m in mine] == ["****6789", "b***@example.com"]


async def test_an_invalid_payout_method_is_refused_with_its_field(gql: GraphQLClient) -> None:
    payload = await register(gql, await second_factor_of(gql), accountNumber="12")
    assert payload["payoutMethod"] is None
    assert the_only_payload_error(payload) == {
        "code": "INVALID_PAYOUT_METHOD",
        "message": "An account number is 6-34 letters and digits",
        "field": "accountNumber",
    }


async def test_the_second_factor_is_enrolled_then_confirmed_once(gql: GraphQLClient) -> None:
    assert the_only_payload_error(await confirm(gql, "123456"))["code"] == "TOTP_NOT_ENROLLED"
    secret = await enrol(gql)
    wrong = TOTP_CLOCK.wrong_code(secret)

    refused = await confirm(gql, wrong)
    assert refused["confirmed"] is False
    assert the_only_payload_error(refused) == {
        "code": "INVALID_TOTP_CODE",
        "message": "That code is not the current one",
        "field": "totpCode",
    }
    assert (await confirm(gql, TOTP_CLOCK.next_code(secret))) == {"confirmed": True, "errors": []}
    again = await confirm(gql, TOTP_CLOCK.next_code(secret))
    assert the_only_payload_error(again)["code"] == "TOTP_ALREADY_CONFIRMED"
    enrol_again = data(await gql(ENROL, user="bo", roles=CREATOR), "enrolSecondFactor")
    assert enrol_again["provisioningUri"] is None
    assert the_only_payload_error(enrol_again)["code"] == "TOTP_ALREADY_CONFIRMED"


async def test_an_admin_sets_the_kyc_flag_and_it_is_audited(gql: GraphQLClient) -> None:
    payload = await set_kyc(gql, "bo")
    assert payload == {
        "kyc": {
            "userId": "bo",
            "verified": True,
            "reason": "passport checked",
            "changedBy": "user:adam",
        },
        "errors": [],
    }
    blank = {"input": {"userId": "bo", "verified": False, "reason": ""}}
    refused = data(await gql(SET_KYC, blank, user="adam", roles=ADMIN), "setKycVerified")
    assert the_only_payload_error(refused)["code"] == "INVALID_REASON"
    bad_user = {"input": {"userId": "b o", "verified": True, "reason": "x"}}
    refused = data(await gql(SET_KYC, bad_user, user="adam", roles=ADMIN), "setKycVerified")
    assert the_only_payload_error(refused)["code"] == "INVALID_USER_ID"

    trail = data(await gql(AUDIT, {"subject": "user:bo"}, user="fiona", roles=FINANCE), "auditLog")
    assert [e["node"] for e in trail["edges"]] == [
        {
            "actor": "user:adam",
            "action": "kyc.verified",
            "subject": "user:bo",
            "reason": "passport checked",
        }
    ]
    controls = data(await gql(CONTROLS, user="bo", roles=CREATOR), "payoutControls")
    assert controls == {
        "creatorId": "bo",
        "kycVerified": True,
        "secondFactorConfirmed": False,
        "minimum": {"amount": "10.00", "currency": "USD"},
        "dailyCap": {"amount": "1000.00", "currency": "USD"},
        "requestedToday": {"amount": "0.00", "currency": "USD"},
    }


# --- requestPayout ------------------------------------------------------------------------------


async def test_bo_requests_a_payout_and_his_diamonds_are_reserved(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)

    payload = await request(gql, secret, method, "2001")

    assert payload["errors"] == [] and payload["replayed"] is False
    payout = payload["payout"]
    assert {k: payout[k] for k in ("status", "diamondsRequested", "diamonds", "amount")} == {
        "status": "REQUESTED",
        "diamondsRequested": "2001",
        "diamonds": "2000",
        "amount": {"amount": "10.00", "currency": "USD"},
    }
    assert payout["method"] == {"id": method, "kind": "BANK_ACCOUNT", "masked": "****6789"}
    assert [(h["status"], h["actor"]) for h in payout["history"]] == [("REQUESTED", "user:bo")]
    found = await earnings(gql, "bo")
    assert (found["diamondsAvailable"], found["diamondsReserved"]) == ("2000", "2000")
    again = await request(gql, secret, method, "2001", code="000000")
    assert again["replayed"] is True and again["payout"]["id"] == payout["id"]
    reused = await request(gql, secret, method, "2002")
    assert the_only_payload_error(reused)["code"] == "IDEMPOTENCY_KEY_REUSED"


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"diamonds": "4001"}, "INSUFFICIENT_DIAMONDS", "diamonds"),
        ({"diamonds": "1999"}, "BELOW_PAYOUT_MINIMUM", "diamonds"),
        ({"diamonds": "0"}, "INVALID_AMOUNT", "diamonds"),
        ({"code": "12345x"}, "INVALID_TOTP_CODE", "totpCode"),
        ({"method_id": "99"}, "PAYOUT_METHOD_NOT_FOUND", "payoutMethodId"),
        ({"method_id": "x"}, "PAYOUT_METHOD_NOT_FOUND", "payoutMethodId"),
        ({"method_id": global_id("Stream", 1)}, "PAYOUT_METHOD_NOT_FOUND", "payoutMethodId"),
        ({"key": "short"}, "INVALID_IDEMPOTENCY_KEY", "idempotencyKey"),
    ],
)
async def test_a_refused_request_says_why_and_reserves_nothing(
    gql: GraphQLClient, change: dict[str, str], code: str, field: str
) -> None:
    secret, method = await ready_bo(gql)
    payload = await request(
        gql,
        secret,
        change.get("method_id", method),
        change.get("diamonds", "2000"),
        change.get("key", "bo-payout-0001"),
        code=change.get("code"),
    )
    assert payload["payout"] is None
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == (code, field)
    assert (await earnings(gql, "bo"))["diamondsReserved"] == "0"


async def test_kyc_a_second_factor_and_no_freeze_are_needed(gql: GraphQLClient) -> None:
    await bo_earns_4000_diamonds(gql)
    secret = pyotp.random_base32()

    no_kyc = await request(gql, secret, "1")
    assert the_only_payload_error(no_kyc)["code"] == "KYC_NOT_VERIFIED"
    await set_kyc(gql, "bo")
    no_factor = await request(gql, secret, "1")
    assert the_only_payload_error(no_factor)["code"] == "TOTP_NOT_ENROLLED"
    no_method = await register(gql, secret)
    assert the_only_payload_error(no_method)["code"] == "TOTP_NOT_ENROLLED"
    secret = await second_factor_of(gql)
    method = (await register(gql, secret))["payoutMethod"]["id"]
    await set_frozen(gql, "bo", True, "chargeback under review")
    frozen = await request(gql, secret, method)
    assert the_only_payload_error(frozen)["code"] == "ACCOUNT_FROZEN"
    await set_frozen(gql, "bo", False)
    assert (await request(gql, secret, method))["errors"] == []


async def test_the_daily_cap_is_a_clear_error_and_posts_nothing(
    gql: GraphQLClient, settings: Any
) -> None:
    """With the default $1,000 cap, Bo can never hit it with $20: so the test's app is built
    with a $15 cap (COINBOOKS_PAYOUT_DAILY_CAP_MINOR=1500) in the fixture below."""
    secret, method = await ready_bo(gql)
    assert (await request(gql, secret, method, "2000", "bo-payout-0001"))["errors"] == []
    payload = await request(gql, secret, method, "2000", "bo-payout-0002")
    assert the_only_payload_error(payload) == {
        "code": "DAILY_PAYOUT_CAP_EXCEEDED",
        "message": "10.00 USD already requested today (UTC); 10.00 USD more would pass the "
        "daily cap of 15.00 USD",
        "field": "diamonds",
    }
    assert (await earnings(gql, "bo"))["diamondsReserved"] == "2000"


@pytest.fixture
def settings(settings: Any, request: pytest.FixtureRequest) -> Any:
    """A $15 daily cap for the test of the cap; the defaults for every other test."""
    if request.node.name != "test_the_daily_cap_is_a_clear_error_and_posts_nothing":
        return settings
    return settings.model_copy(update={"payout_daily_cap_minor": 1_500})


# --- the finance actions ------------------------------------------------------------------------


async def test_finance_sends_then_pays_and_everyone_sees_the_history(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method, "3000"))["payout"]["id"]

    in_flight = data(await gql(IN_FLIGHT, user="fiona", roles=FINANCE), "payoutsInFlight")
    assert [e["node"] for e in in_flight["edges"]] == [
        {"id": payout_id, "status": "REQUESTED", "creatorId": "bo"}
    ]
    sent = await act(gql, "sent", payout_id, reference="ach_123")
    assert sent["errors"] == [] and sent["payout"]["status"] == "SENT"
    paid = await act(gql, "paid", payout_id, reason="bank statement 12/01")
    assert paid["payout"]["status"] == "PAID"
    assert [
        (h["status"], h["actor"], h["reason"], h["providerReference"])
        for h in paid["payout"]["history"]
    ] == [
        ("REQUESTED", "user:bo", "", None),
        ("SENT", "user:fiona", "", "ach_123"),
        ("PAID", "user:fiona", "bank statement 12/01", None),
    ]
    # a retry of the sent action is the first result, brought up to date; nothing is posted
    replay = await act(gql, "sent", payout_id, reference="ach_123")
    assert (replay["replayed"], replay["payout"]["status"]) == (True, "PAID")

    mine = data(await gql(PAYOUTS, {"first": 10}, user="bo", roles=CREATOR), "payouts")
    one = data(await gql(PAYOUT, {"id": payout_id}, user="sue", roles=SUPPORT), "payout")
    assert mine["edges"][0]["node"] == one == paid["payout"]
    in_flight = data(await gql(IN_FLIGHT, user="fiona", roles=FINANCE), "payoutsInFlight")
    assert in_flight["edges"] == []
    found = await earnings(gql, "bo")
    assert (found["diamonds"], found["payable"]["amount"]) == ("1000", "5.00")
    trail = data(
        await gql(
            AUDIT, {"subject": f"payout:{pk_of(payout_id, 'Payout')}"}, user="adam", roles=ADMIN
        ),
        "auditLog",
    )
    assert [e["node"]["action"] for e in trail["edges"]] == ["payout.paid", "payout.sent"]


async def test_a_failed_payout_returns_the_diamonds(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method, "3000"))["payout"]["id"]
    await act(gql, "sent", payout_id)

    no_reason = await act(gql, "failed", payout_id)
    assert the_only_payload_error(no_reason) == {
        "code": "INVALID_REASON",
        "message": "Say why: a reason is required",
        "field": "reason",
    }
    failed = await act(gql, "failed", payout_id, key="fiona-fail-2", reason="account closed")
    assert failed["payout"]["status"] == "FAILED"
    found = await earnings(gql, "bo")
    assert (found["diamondsAvailable"], found["diamondsReserved"]) == ("4000", "0")
    assert found["payable"]["amount"] == "20.00"


async def test_a_paid_payout_the_bank_returns_is_owed_and_available_again(
    gql: GraphQLClient,
) -> None:
    """Paid $15.00 for 3,000 diamonds, then the bank sends it back: Bo is owed $20.00 again on
    4,000 diamonds available; a second return is refused."""
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method, "3000"))["payout"]["id"]
    await act(gql, "sent", payout_id)
    await act(gql, "paid", payout_id)

    returned = await act(gql, "returned", payout_id, key="fiona-return-1", reason="bounced")
    assert (returned["errors"], returned["payout"]["status"]) == ([], "RETURNED")
    found = await earnings(gql, "bo")
    assert (found["diamondsAvailable"], found["diamondsReserved"]) == ("4000", "0")
    assert found["payable"]["amount"] == "20.00"
    again = await act(gql, "returned", payout_id, key="fiona-return-2", reason="again")
    assert the_only_payload_error(again)["code"] == "INVALID_PAYOUT_TRANSITION"


@pytest.mark.parametrize(
    ("first", "then", "code", "field"),
    [
        ("reject", "sent", "INVALID_PAYOUT_TRANSITION", "payoutId"),
        ("reject", "reject", "INVALID_PAYOUT_TRANSITION", "payoutId"),
        (None, "paid", "INVALID_PAYOUT_TRANSITION", "payoutId"),
        (None, "failed", "INVALID_PAYOUT_TRANSITION", "payoutId"),
        (None, "returned", "INVALID_PAYOUT_TRANSITION", "payoutId"),
        ("sent", "returned", "INVALID_PAYOUT_TRANSITION", "payoutId"),
    ],
)
async def test_a_phase_out_of_order_is_refused(
    gql: GraphQLClient, first: str | None, then: str, code: str, field: str
) -> None:
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method))["payout"]["id"]
    if first is not None:
        assert (await act(gql, first, payout_id, reason="duplicate"))["errors"] == []
    payload = await act(gql, then, payout_id, key="fiona-second-act", reason="again")
    error = the_only_payload_error(payload)
    assert (error["code"], error["field"]) == (code, field)
    assert payload["payout"] is None


async def test_finance_action_errors(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method))["payout"]["id"]

    cases = [
        (await act(gql, "sent", "999"), "PAYOUT_NOT_FOUND"),
        (await act(gql, "sent", "not-an-id"), "PAYOUT_NOT_FOUND"),
        (await act(gql, "sent", payout_id, key="short"), "INVALID_IDEMPOTENCY_KEY"),
        (await act(gql, "reject", payout_id, reason="x" * 501), "INVALID_REASON"),
        (await act(gql, "sent", payout_id, reference="r" * 201), "INVALID_PROVIDER_REFERENCE"),
    ]
    assert [the_only_payload_error(p)["code"] for p, _ in cases] == [c for _, c in cases]
    await act(gql, "sent", payout_id, key="fiona-key-0001")
    reused = await act(gql, "sent", payout_id, key="fiona-key-0001", reference="other")
    assert the_only_payload_error(reused)["code"] == "IDEMPOTENCY_KEY_REUSED"


# --- who may do what ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "variables", "roles"),
    [
        (ENROL, {}, ("viewer",)),
        (CONFIRM, {"input": {"totpCode": "123456"}}, FINANCE),
        (
            REGISTER_METHOD,
            {"input": {"kind": "PAYPAL", "holderName": "A", "totpCode": "123456"}},
            ("viewer",),
        ),
        (
            REQUEST_PAYOUT,
            {
                "input": {
                    "idempotencyKey": "ana-payout-1",
                    "diamonds": "1",
                    "payoutMethodId": "1",
                    "totpCode": "123456",
                }
            },
            ADMIN,
        ),
        (SET_KYC, {"input": {"userId": "bo", "verified": True, "reason": "x"}}, FINANCE),
        (
            action_mutation("markPayoutSent"),
            {"input": {"payoutId": "1", "idempotencyKey": "support-sends"}},
            SUPPORT,
        ),
        (
            action_mutation("rejectPayout"),
            {"input": {"payoutId": "1", "idempotencyKey": "creator-rejects", "reason": "x"}},
            CREATOR,
        ),
        (
            action_mutation("markPayoutReturned"),
            {"input": {"payoutId": "1", "idempotencyKey": "admin-returns", "reason": "x"}},
            ADMIN,
        ),
        (IN_FLIGHT, {}, SUPPORT),
        (AUDIT, {}, SUPPORT),
        (PAYOUTS, {"creatorId": "bo", "first": 5}, CREATOR),
        (METHODS, {"creatorId": "bo"}, CREATOR),
        (CONTROLS, {"creatorId": "bo"}, ("viewer",)),
        (PAYOUTS, {"first": 5}, ("viewer",)),
    ],
)
async def test_each_operation_is_refused_without_its_role(
    gql: GraphQLClient, query: str, variables: dict[str, Any], roles: tuple[str, ...]
) -> None:
    reply = await gql(query, variables, user="ana", roles=roles)
    assert error_code(reply) == "FORBIDDEN"
    anonymous = await gql(query, variables)
    assert error_code(anonymous) == "UNAUTHENTICATED"


async def test_another_creator_may_not_read_bos_payout(gql: GraphQLClient) -> None:
    secret, method = await ready_bo(gql)
    payout_id = (await request(gql, secret, method))["payout"]["id"]
    theirs = await gql(PAYOUT, {"id": payout_id}, user="cy", roles=CREATOR)
    assert theirs == {"data": {"payout": None}}  # as if there were no such payout
    assert data(await gql(PAYOUT, {"id": "404"}, user="cy", roles=CREATOR), "payout") is None
    mine = data(await gql(PAYOUT, {"id": payout_id}, user="bo", roles=CREATOR), "payout")
    assert mine["id"] == payout_id
    cys = await request(gql, secret, method, key="cy-payout-0001", user="cy")
    assert the_only_payload_error(cys)["code"] == "KYC_NOT_VERIFIED"
