"""The limit refresh's circuit breaker: refuse a night that moves too much of the book at once.

The book is every merchant with a line before the run (status ``active`` or ``frozen``).
A merchant of the book *moves*
when its status changes (frozen, unfrozen, closed) or its line is cut or raised (the policy
keeps moves under its tolerance, so every change is material).  Not counted:

* a cut or raise that continues a decision already taken: the previous version's target was
  already below (above) its line, and the step cap, the tolerance or the balance floor held
  the line back (e.g. a line that follows its balance down as the month-end book reports
  repayments); only a new decision or a change of direction is a new move;
* a freeze for repayments past due (``FREEZE_DELINQUENT``) and a closure after a charge-off
  (``CLOSED_CHARGED_OFF``): facts of the loan book, reported together at month end, that only
  lower the bank's exposure.

The breaker is there for lines computed from wrong or missing inputs (new cuts and raises,
unfreezes, freezes for missing or collapsed turnover).  The share moved is moves / book.

:func:`check_breaker` raises :class:`LimitsBreakerError` past ``YIDAI_LIMITS_MAX_CHANGE_SHARE``
unless forced with a reason (then it logs a warning with the reason and the share).  It is
not applied to a first publication (no previous version: lines come from the loan book).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from yidai.core.errors import YidaiError

log = logging.getLogger(__name__)

SETTING = "YIDAI_LIMITS_MAX_CHANGE_SHARE"
ARREARS_FREEZE = "FREEZE_DELINQUENT"  # yidai.decisioning.merchant_limits' reason codes
CHARGE_OFF_CLOSURE = "CLOSED_CHARGED_OFF"


class LimitsBreakerError(YidaiError):
    """The refresh would move more of the book than the breaker allows; nothing published."""


@dataclass(frozen=True)
class BookMove:
    """How many lines of the book a refresh moves, by kind."""

    lines_before: int
    cut: int
    raised: int
    frozen: int
    unfrozen: int
    closed: int
    continued: int  # moves continuing a decision already taken (not counted)
    frozen_for_arrears: int = 0  # freezes for repayments past due (not counted)
    closed_charged_off: int = 0  # closures after a charge-off (not counted)

    @property
    def moved(self) -> int:
        return self.cut + self.raised + self.frozen + self.unfrozen + self.closed

    @property
    def share(self) -> float:
        return self.moved / self.lines_before if self.lines_before else 0.0

    def describe(self) -> str:
        return (
            f"{self.moved:,} of {self.lines_before:,} lines: {self.cut:,} cut, "
            f"{self.raised:,} raised, {self.frozen:,} frozen, {self.unfrozen:,} unfrozen, "
            f"{self.closed:,} closed; not counted: {self.frozen_for_arrears:,} frozen for "
            f"arrears, {self.closed_charged_off:,} closed after a charge-off, "
            f"{self.continued:,} continuing a decision already taken"
        )


def book_move(limits: pd.DataFrame, previous: pd.DataFrame | None) -> BookMove:
    """Count the book's moves in a limits table (``previous_status``/``previous_line`` are the
    lines before the run).  ``previous`` is the previous version's table (``merchant_id``,
    ``decision``, ``change_capped``, and when present ``target_line`` and ``credit_line``),
    used to leave out the moves that continue a decision already taken."""
    before = limits["previous_status"].astype(str).to_numpy()
    after = limits["status"].astype(str).to_numpy()
    line_before = limits["previous_line"].to_numpy(np.float64)
    line_after = limits["credit_line"].to_numpy(np.float64)
    book = before != "none"
    same = book & (before == after)
    cut = same & (line_after < line_before)
    raised = same & (line_after > line_before)
    continued = np.zeros(len(limits), dtype=bool)
    if previous is not None and len(previous):
        prev = (
            previous.drop_duplicates("merchant_id")
            .set_index("merchant_id")
            .reindex(limits["merchant_id"].astype(str))
        )
        capped = prev["change_capped"].fillna(False).to_numpy(dtype=bool)
        decision = prev["decision"].astype(str).to_numpy()
        going_down = capped & (decision == "decrease")
        going_up = capped & (decision == "increase")
        if {"target_line", "credit_line"} <= set(prev.columns):
            target = prev["target_line"].to_numpy(np.float64)
            line = prev["credit_line"].to_numpy(np.float64)
            going_down |= target < line  # NaN (not in the previous version) compares False
            going_up |= target > line
        continued = (cut & going_down) | (raised & going_up)
    frozen = book & (before == "active") & (after == "frozen")
    closed = book & (after == "none")
    reason = limits["reason_code"].astype(str).to_numpy() if "reason_code" in limits else None
    arrears = frozen & (reason == ARREARS_FREEZE) if reason is not None else frozen & False
    charged_off = closed & (reason == CHARGE_OFF_CLOSURE) if reason is not None else closed & False
    return BookMove(
        lines_before=int(book.sum()),
        cut=int((cut & ~continued).sum()),
        raised=int((raised & ~continued).sum()),
        frozen=int((frozen & ~arrears).sum()),
        unfrozen=int((book & (before == "frozen") & (after == "active")).sum()),
        closed=int((closed & ~charged_off).sum()),
        continued=int(continued.sum()),
        frozen_for_arrears=int(arrears.sum()),
        closed_charged_off=int(charged_off.sum()),
    )


def check_breaker(
    move: BookMove,
    limit: float,
    *,
    as_of: date,
    live_version: str | None,
    force_reason: str | None,
) -> str | None:
    """Raise :class:`LimitsBreakerError` when ``move.share`` exceeds ``limit`` and the run is
    not forced; returns the reason of a forced override that was needed (None otherwise)."""
    if move.share <= limit:
        if force_reason:
            log.info(
                "limit refresh %s: --force not needed (%.1f%% of the book moves, limit %.1f%%)",
                as_of,
                100 * move.share,
                100 * limit,
            )
        return None
    if force_reason:
        log.warning(
            "limit refresh %s FORCED past the circuit breaker: %.1f%% of the book moves "
            "(%s), limit %.1f%%; reason: %s",
            as_of,
            100 * move.share,
            move.describe(),
            100 * limit,
            force_reason,
        )
        return force_reason
    live = f"limits {live_version} stay live" if live_version else "no limits are live"
    raise LimitsBreakerError(
        f"circuit breaker: the limit refresh as of {as_of} would move {100 * move.share:.1f}% "
        f"of the book ({move.describe()}), over the limit of {100 * limit:.1f}% ({SETTING}); "
        f"nothing was published, {live}. If the change is intended, re-run with "
        f'`yidai limits refresh --as-of {as_of} --force --reason "why"`'
    )
