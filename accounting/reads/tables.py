"""The reads' own tables: the postings' totals per hour (by account kind, commodity and entry
kind) and the watermark below which every posting is counted in them
(``accounting/reads/period_totals.py`` writes them; ``financials`` reads them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, SmallInteger, text
from sqlalchemy.orm import Mapped, mapped_column

from accounting.ledger.tables import Base


class PostingHourTotalRow(Base):
    """The postings of one hour (UTC, ``hour <= posted_at < hour + 1h``) to the accounts of one
    kind in one commodity, by entry kind: their sum (debit-positive) and their count. Written
    once, never changed (append-only)."""

    __tablename__ = "posting_hour_total"

    hour: Mapped[datetime] = mapped_column(primary_key=True)
    account_kind: Mapped[str] = mapped_column(primary_key=True)
    """A platform account's code, or the pattern of a user's or creator's accounts
    (``user:*:coins_value``)."""
    commodity: Mapped[str] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(primary_key=True)
    """The entry kind, ``payout:<phase>`` for a payout's."""
    account_type: Mapped[str]
    normal_sign: Mapped[int] = mapped_column(SmallInteger)
    amount: Mapped[int]
    postings: Mapped[int]

    __table_args__ = (
        CheckConstraint("hour = date_trunc('hour', hour, 'UTC')", name="hour"),
        CheckConstraint("postings > 0", name="postings"),
    )


class PostingTotalWatermarkRow(Base):
    """At most one row: every posting dated before ``summarized_until`` is in the totals, and
    no total is of an hour at or after it."""

    __tablename__ = "posting_total_watermark"

    id: Mapped[bool] = mapped_column(primary_key=True, server_default=text("true"))
    summarized_until: Mapped[datetime]

    __table_args__ = (CheckConstraint("id", name="one_row"),)
