"""The clock second-factor codes are checked at in tests. A code serves once (one per 30-second
step), so a test that takes a code moves this clock on a step and gets that step's code: every
code a test takes is of a step of its own, and is checked at that step."""

from __future__ import annotations

import time

import pyotp

from accounting.payouts.second_factor import STEP_SECONDS


class StepClock:
    def __init__(self) -> None:
        self.now = float(int(time.time() // STEP_SECONDS) * STEP_SECONDS)

    def __call__(self) -> float:
        return self.now

    def next_code(self, secret: str) -> str:
        """Move on a step; the code of that step."""
        self.now += STEP_SECONDS
        return pyotp.TOTP(secret).at(self.now)

    def codes_now(self, secret: str) -> list[str]:
        """Three codes accepted at once: the clock moves on two steps (past every step taken
        before), and these are the codes of the step before, this step and the step after."""
        self.now += 2 * STEP_SECONDS
        totp = pyotp.TOTP(secret)
        return [totp.at(self.now + STEP_SECONDS * offset) for offset in (-1, 0, 1)]

    def wrong_code(self, secret: str) -> str:
        """A code none of the accepted ones is (the clock does not move)."""
        totp = pyotp.TOTP(secret)
        accepted = {totp.at(self.now + STEP_SECONDS * offset) for offset in (-1, 0, 1)}
        return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in accepted)


TOTP_CLOCK = StepClock()
"""One clock for every test: it only moves forward, so no two codes a test takes share a step."""
