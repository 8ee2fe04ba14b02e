"""Tracing a charged-back purchase's spent coins to what they bought (DESIGN.md: Chargeback).

The coins a purchase brings are taken to be the ones spent next: its spent coins are traced to
the buyer's gifts and unlocks from the purchase's entry on, earliest first, skipping coins that
standing chargebacks already traced (so two stolen purchases are never traced to the same
coins). A balance held from before the purchase is not counted as spent first: otherwise a
thief could shield a stolen purchase behind a small old balance. Of the gifts still in their
hold, the traced share of their diamonds and payable comes back (a clawback)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from accounting.chargebacks.rules import CreatorClawback
from accounting.gifts.reads import Gift, gifts_in_hold, lock_gifts
from accounting.purchases.reads import Purchase

_SPENDING = text(
    """
    SELECT 'gift' AS what, g.id, g.created_at, g.coins, g.release_entry_id IS NOT NULL AS released,
           coalesce((SELECT sum(t.coins) FROM chargeback_trace t
                       JOIN chargeback b ON b.id = t.chargeback_id
                      WHERE t.spending = 'gift' AND t.spending_id = g.id
                        AND b.status <> 'won'), 0) AS traced
      FROM gift g
     WHERE g.sender_id = :user_id AND g.created_at >= :since
    UNION ALL
    SELECT 'unlock', u.id, u.created_at, u.coins, true,
           coalesce((SELECT sum(t.coins) FROM chargeback_trace t
                       JOIN chargeback b ON b.id = t.chargeback_id
                      WHERE t.spending = 'unlock' AND t.spending_id = u.id
                        AND b.status <> 'won'), 0)
      FROM feature_unlock u
     WHERE u.user_id = :user_id AND u.created_at >= :since
     ORDER BY created_at, id"""
)
_PURCHASE_POSTED_AT = text("SELECT posted_at FROM journal_entry WHERE id = :id")


@dataclass(frozen=True, slots=True)
class Trace:
    """Spent coins traced to one gift or unlock; for a gift still in its hold, the diamonds and
    payable that come back with them."""

    spending: str
    spending_id: int
    coins: int
    creator_id: str | None = None
    diamonds: int = 0
    payable_micros: int = 0

    @property
    def clawed(self) -> bool:
        return self.creator_id is not None


@dataclass(frozen=True, slots=True)
class _Piece:
    """Spent coins taken from one gift or unlock, before its gift (if held) is locked."""

    spending: str
    spending_id: int
    taken: int
    traced_before: int
    released: bool

    @property
    def held_gift(self) -> bool:
        return self.spending == "gift" and not self.released


def share(total: int, traced_before: int, taken: int, coins: int) -> int:
    """The part of ``total`` that ``taken`` of a gift's ``coins`` paid for, after
    ``traced_before`` of them: floored on the running total, so a gift traced in pieces gives
    back exactly ``total`` once every coin is traced."""
    return total * (traced_before + taken) // coins - total * traced_before // coins


async def trace_spent_coins(
    session: AsyncSession, purchase: Purchase, coins_spent: int, held: Mapping[int, Gift]
) -> list[Trace]:
    """The purchase's ``coins_spent`` spent coins, traced from the time its entry was posted
    (none spent: nothing to trace); ``held`` are the gifts ``lock_gifts_in_hold`` locked."""
    posted_at = await session.scalar(_PURCHASE_POSTED_AT, {"id": purchase.entry_id})
    if not coins_spent:
        return []
    return await _trace_spending(session, purchase, posted_at, coins_spent, held)


async def lock_gifts_in_hold(session: AsyncSession, purchase: Purchase) -> dict[int, Gift]:
    """The buyer's gifts since the purchase that are still in their hold, by id, locked ``FOR
    UPDATE`` in id order, in one statement: every gift a trace of its spent coins may claw back
    from. A chargeback locks them before its accounts (docs/accounting.md, "Lock order": a hold
    release locks a gift, then its creator's diamonds), and their creators' accounts with its
    others, in one statement, before it traces."""
    if purchase.entry_id is None:
        return {}
    posted_at = await session.scalar(_PURCHASE_POSTED_AT, {"id": purchase.entry_id})
    return await gifts_in_hold(session, purchase.user_id, posted_at)


def creators_of(gifts: Mapping[int, Gift]) -> list[str]:
    """The creators of ``gifts`` that carry diamonds, in order: those a trace may claw back from."""
    return sorted({gift.creator_id for gift in gifts.values() if gift.diamonds > 0})


async def _trace_spending(
    session: AsyncSession,
    purchase: Purchase,
    posted_at: object,
    coins_spent: int,
    held: Mapping[int, Gift],
) -> list[Trace]:
    """The purchase's ``coins_spent`` spent coins, traced to what they bought: the buyer's
    gifts and unlocks from the purchase on, earliest first, skipping coins that standing
    chargebacks already traced. The gifts still in their hold are locked (``held``), so no hold
    release moves their diamonds meanwhile (the buyer's wallet is locked already, so no other
    chargeback of theirs traces meanwhile); one sent after they were locked and before the
    wallet was is locked here."""
    rows = (
        await session.execute(_SPENDING, {"user_id": purchase.user_id, "since": posted_at})
    ).mappings()
    pieces: list[_Piece] = []
    left = coins_spent
    for row in rows:
        if left <= 0:
            break
        traced = int(row["traced"])
        taken = min(left, int(row["coins"]) - traced)
        if taken <= 0:
            continue
        left -= taken
        pieces.append(
            _Piece(str(row["what"]), int(row["id"]), taken, traced, bool(row["released"]))
        )
    late = [p.spending_id for p in pieces if p.held_gift and p.spending_id not in held]
    locked = {**held, **await lock_gifts(session, late)}
    traces: list[Trace] = []
    for piece in pieces:
        gift = locked.get(piece.spending_id) if piece.spending == "gift" else None
        if gift is None or gift.release_entry_id is not None:  # nothing (more) to claw back
            traces.append(Trace(piece.spending, piece.spending_id, piece.taken))
            continue
        traces.append(
            Trace(
                piece.spending,
                piece.spending_id,
                piece.taken,
                creator_id=gift.creator_id,
                diamonds=share(gift.diamonds, piece.traced_before, piece.taken, gift.coins),
                payable_micros=share(
                    gift.payable_micros, piece.traced_before, piece.taken, gift.coins
                ),
            )
        )
    return traces


def clawbacks_by_creator(gifts: list[Trace]) -> tuple[CreatorClawback, ...]:
    """The clawed-back diamonds and payable of ``gifts``, summed per creator, in creator order."""
    by_creator: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for gift in gifts:
        assert gift.creator_id is not None
        by_creator[gift.creator_id][0] += gift.diamonds
        by_creator[gift.creator_id][1] += gift.payable_micros
    return tuple(
        CreatorClawback(creator, diamonds, payable)
        for creator, (diamonds, payable) in sorted(by_creator.items())
    )
