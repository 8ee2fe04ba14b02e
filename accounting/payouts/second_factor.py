"""A creator's TOTP second factor (RFC 6238): enrolled with a secret the creator's
authenticator app reads from a provisioning URI, confirmed with a first code, then asked for
to register a payout method and to request a payout.

Guarded (findings of a hostile review: codes were guessed at 150 a second and one code served
two payouts):

* a code serves once: the time step it belongs to is written down for the creator
  (``second_factor_step``, one row per step, its key the creator and the step), with what it
  served; the same step for anything else is ``SECOND_FACTOR_REUSED``. The same request sent
  again with its code (a retry under the same idempotency key) is not a reuse;
* every attempt of a creator takes the creator's ``second_factor_throttle`` row for update, so
  attempts of one creator are counted one after another, whichever request, alias or process
  they come from. Wrong and reused codes are failures; ``max_failures`` of them within
  ``window`` lock the second factor for ``lockout``, during which every code, even the right
  one, is ``SECOND_FACTOR_LOCKED`` (with the seconds left). A right code clears the failures;
* the secret is kept sealed (:mod:`accounting.payouts.sealing`), opened only to check a code.

An attempt's outcome is committed before it is reported: a failure counts even though the
request it came with changes nothing else."""

from __future__ import annotations

import hmac
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from accounting.ledger.chart import check_user_id
from accounting.ledger.errors import LedgerError
from accounting.ledger.posting import in_transaction
from accounting.payouts.errors import (
    InvalidTotpCode,
    SecondFactorLocked,
    SecondFactorReused,
    TotpAlreadyConfirmed,
    TotpNotEnrolled,
)
from accounting.payouts.sealing import PayoutKeys
from accounting.payouts.tables import CreatorTotpRow, SecondFactorStepRow, SecondFactorThrottleRow

ISSUER = "Coinbooks"
STEP_SECONDS = 30
VALID_WINDOW = 1
"""Codes of the previous and the next 30-second step are accepted too (clock drift)."""
_CODE = re.compile(r"^[0-9]{6}$")
CONFIRMING = "confirm"
"""What the first code serves: confirming the enrolment."""

Clock = Callable[[], float]
"""Seconds since the epoch: the time codes are checked at."""


@dataclass(frozen=True, slots=True)
class Throttle:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)


def matching_step(secret: str, code: str, now: float) -> int | None:
    """The time step within the window whose code ``code`` is, if any."""
    if not _CODE.fullmatch(code):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now // STEP_SECONDS)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


@dataclass(frozen=True, slots=True)
class SecondFactor:
    """Creators' second factors, sealed with ``keys``, checked at ``clock``'s time."""

    keys: PayoutKeys
    throttle: Throttle = Throttle()
    clock: Clock = field(default=time.time)

    async def start_enrolment(
        self, sessions: async_sessionmaker[AsyncSession], creator_id: str
    ) -> str:
        """Enrol a new secret (:meth:`enrol`), in a transaction of its own."""
        return await in_transaction(sessions, lambda session: self.enrol(session, creator_id))

    async def enrol(self, session: AsyncSession, creator_id: str) -> str:
        """A new secret for the creator; the provisioning URI to show as a QR code. Enrolling
        again before confirming replaces the secret; a confirmed factor cannot be replaced."""
        check_user_id(creator_id, field="creatorId")
        existing = await session.get(CreatorTotpRow, creator_id, with_for_update=True)
        if existing is not None and existing.confirmed_at is not None:
            raise TotpAlreadyConfirmed(
                "A confirmed second factor is already enrolled", creator_id=creator_id
            )
        secret = pyotp.random_base32()
        sealed = self.keys.seal(creator_id, secret)
        statement = pg_insert(CreatorTotpRow).values(creator_id=creator_id, secret=sealed)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["creator_id"],
                set_={"secret": statement.excluded.secret, "enrolled_at": func.now()},
            )
        )
        return pyotp.TOTP(secret).provisioning_uri(name=creator_id, issuer_name=ISSUER)

    async def confirm_enrolment(
        self, sessions: async_sessionmaker[AsyncSession], creator_id: str, code: str
    ) -> None:
        """Confirm the enrolled secret with a code from the app: from now on payouts and new
        payout methods need one. The code is used up, and counted like any other."""
        await self.verify(sessions, creator_id, code, purpose=CONFIRMING)

    async def verify(
        self,
        sessions: async_sessionmaker[AsyncSession],
        creator_id: str,
        code: str,
        *,
        purpose: str,
    ) -> None:
        """Use up ``code`` for ``purpose`` (e.g. ``payout:<idempotency key>``) or refuse it;
        either way the attempt is committed before this returns or raises."""
        outcome = await in_transaction(
            sessions, lambda session: self._attempt(session, creator_id, code, purpose)
        )
        if outcome is not None:
            raise outcome

    async def _attempt(
        self, session: AsyncSession, creator_id: str, code: str, purpose: str
    ) -> LedgerError | None:
        throttle = await _throttle_row(session, creator_id)
        now = await session.scalar(select(func.clock_timestamp()))
        assert now is not None
        if throttle.locked_until is not None and throttle.locked_until > now:
            return _locked(throttle.locked_until, now)
        row = await session.get(CreatorTotpRow, creator_id, with_for_update=True)
        confirming = purpose == CONFIRMING
        if row is None or (row.confirmed_at is None and not confirming):
            raise TotpNotEnrolled(
                "Enrol and confirm a second factor first"
                if not confirming
                else "Enrol a second factor first",
                field="totpCode",
            )
        if confirming and row.confirmed_at is not None:
            raise TotpAlreadyConfirmed("The second factor is already confirmed", field="totpCode")
        step = matching_step(self.keys.unseal(creator_id, row.secret), code, self.clock())
        if step is None:
            self._fail(throttle, now)
            return InvalidTotpCode("That code is not the current one", field="totpCode")
        if not await _use_step(session, creator_id, step, purpose):
            self._fail(throttle, now)
            return SecondFactorReused(
                "That code was used already: wait for the next one", field="totpCode"
            )
        throttle.failures, throttle.window_started_at = 0, None
        if confirming:
            row.confirmed_at = now
        await session.flush()
        return None

    def _fail(self, throttle: SecondFactorThrottleRow, now: datetime) -> None:
        """Count a failure; the last one the window allows locks the second factor."""
        started = throttle.window_started_at
        if started is None or started + self.throttle.window <= now:
            throttle.failures, throttle.window_started_at = 0, now
        throttle.failures += 1
        if throttle.failures >= self.throttle.max_failures:
            throttle.locked_until = now + self.throttle.lockout
            throttle.failures, throttle.window_started_at = 0, None


def _locked(until: datetime, now: datetime) -> SecondFactorLocked:
    seconds = max(1, math.ceil((until - now).total_seconds()))
    return SecondFactorLocked(
        f"Too many wrong codes: the second factor is locked for {seconds} more seconds",
        field="totpCode",
        retry_after_seconds=seconds,
        locked_until=until,
    )


async def _throttle_row(session: AsyncSession, creator_id: str) -> SecondFactorThrottleRow:
    """The creator's throttle row, created if need be, locked for this attempt."""
    check_user_id(creator_id, field="creatorId")
    await session.execute(
        pg_insert(SecondFactorThrottleRow)
        .values(creator_id=creator_id)
        .on_conflict_do_nothing(index_elements=["creator_id"])
    )
    row = await session.get(
        SecondFactorThrottleRow, creator_id, with_for_update=True, populate_existing=True
    )
    assert row is not None
    return row


async def _use_step(session: AsyncSession, creator_id: str, step: int, purpose: str) -> bool:
    """Write the step down as used for ``purpose``; false when it served something else."""
    inserted = await session.scalar(
        pg_insert(SecondFactorStepRow)
        .values(creator_id=creator_id, time_step=step, purpose=purpose)
        .on_conflict_do_nothing(index_elements=["creator_id", "time_step"])
        .returning(SecondFactorStepRow.time_step)
    )
    if inserted is not None:
        return True
    used_for = await session.scalar(
        select(SecondFactorStepRow.purpose).where(
            SecondFactorStepRow.creator_id == creator_id, SecondFactorStepRow.time_step == step
        )
    )
    return used_for == purpose


async def is_confirmed(session: AsyncSession, creator_id: str) -> bool:
    row = await session.get(CreatorTotpRow, creator_id)
    return row is not None and row.confirmed_at is not None


async def locked_until(session: AsyncSession, creator_id: str) -> datetime | None:
    """When the creator's locked second factor opens again; None when it is not locked."""
    row = await session.get(SecondFactorThrottleRow, creator_id)
    if row is None or row.locked_until is None:
        return None
    now = await session.scalar(select(func.clock_timestamp()))
    return row.locked_until if now is not None and row.locked_until > now else None
