"""The weighted average: the deferred value that spending coins releases from a wallet."""

from __future__ import annotations


def release_value(value_micros: int, coins_held: int, coins_spent: int) -> int:
    """The deferred value released when ``coins_spent`` of ``coins_held`` coins are spent: the
    wallet's weighted average, rounded half-even, and all that is left for the last coin.

    Exact by construction: spending a wallet down to zero coins releases exactly its value, in
    any order and any sizes of spending, because each step releases a share of what remains.
    """
    if not 0 < coins_spent <= coins_held:
        raise ValueError(f"cannot spend {coins_spent} of {coins_held} coins")
    if value_micros < 0:
        raise ValueError("a wallet's value is never negative")
    if coins_spent == coins_held:
        return value_micros
    share, remainder = divmod(value_micros * coins_spent, coins_held)
    if 2 * remainder > coins_held or (2 * remainder == coins_held and share % 2):
        share += 1  # half-even, as round() does
    return min(value_micros, share)
