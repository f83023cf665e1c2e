"""The limit refresh's circuit breaker: what counts as a move of the book, and the setting."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from yidai.core.errors import YidaiError
from yidai.decisioning.merchant_limits import STATUSES
from yidai.jobs.limits.breaker import BookMove, LimitsBreakerError, book_move, check_breaker

DAY = date(2026, 4, 1)


def limits_table(rows: list[tuple[str, str, float, str, float]]) -> pd.DataFrame:
    """(merchant, previous status, previous line, status, line) rows as in limits.parquet."""
    status = pd.CategoricalDtype(list(STATUSES))
    frame = pd.DataFrame(
        rows, columns=["merchant_id", "previous_status", "previous_line", "status", "credit_line"]
    )
    return frame.astype({"previous_status": status, "status": status})


BOOK = limits_table(
    [
        ("a", "active", 100.0, "active", 100.0),  # kept
        ("b", "active", 100.0, "active", 50.0),  # cut
        ("c", "active", 100.0, "active", 50.0),  # cut, continuing last night's capped cut
        ("d", "active", 100.0, "active", 130.0),  # raised
        ("e", "active", 100.0, "frozen", 100.0),  # frozen
        ("f", "frozen", 100.0, "active", 100.0),  # unfrozen
        ("g", "active", 100.0, "none", 0.0),  # closed
        ("h", "frozen", 100.0, "frozen", 100.0),  # kept frozen
        ("i", "none", 0.0, "active", 50.0),  # a new line: not in the book
        ("j", "active", 100.0, "active", 70.0),  # cut; last night a capped *raise*
    ]
)
PREVIOUS = pd.DataFrame(
    {
        "merchant_id": ["b", "c", "j", "d"],
        "decision": ["decrease", "decrease", "increase", "increase"],
        "change_capped": [False, True, True, False],
    }
)


def test_every_kind_of_move_of_the_book_is_counted_once() -> None:
    move = book_move(BOOK, PREVIOUS)
    assert move == BookMove(
        lines_before=9, cut=2, raised=1, frozen=1, unfrozen=1, closed=1, continued=1
    )
    assert move.moved == 6 and move.share == pytest.approx(6 / 9)
    # without a previous version nothing is a continued step
    assert book_move(BOOK, None).cut == 3


def test_freezes_for_arrears_are_not_counted_other_freezes_are() -> None:
    """Month-end arrears freeze many lines at once (the demo: 361 of 1,965 on 2026-09-30):
    facts of the loan book that only lower exposure; a freeze for missing turnover counts."""
    book = limits_table(
        [
            ("a", "active", 100.0, "frozen", 100.0),
            ("b", "active", 100.0, "frozen", 100.0),
            ("c", "active", 100.0, "frozen", 100.0),
            ("d", "active", 100.0, "active", 100.0),
        ]
    ).assign(reason_code=["FREEZE_DELINQUENT", "FREEZE_DELINQUENT", "FREEZE_NO_TURNOVER", "KEEP"])
    move = book_move(book, None)
    assert (move.frozen, move.frozen_for_arrears, move.moved) == (1, 2, 1)
    assert move.share == pytest.approx(1 / 4)
    assert "2 frozen for arrears" in move.describe()


def test_moves_towards_a_target_set_the_night_before_are_not_new_moves() -> None:
    """The demo's 2026-09-30: the month-end book lowered balances and 426 of 442 cuts were
    lines following a target already below them (held back by the balance floor or the
    tolerance); a charge-off closure is a fact of the book.  A new cut still counts."""
    book = limits_table(
        [
            ("a", "active", 100.0, "active", 60.0),  # target was 50 < 100 last night: continued
            ("b", "active", 100.0, "active", 60.0),  # target was 120 last night: a new cut
            ("c", "active", 100.0, "active", 130.0),  # target was 150 > 100: continued raise
            ("d", "active", 100.0, "none", 0.0),  # closed after a charge-off
            ("e", "active", 100.0, "none", 0.0),  # closed for another reason: counts
            ("f", "active", 100.0, "active", 60.0),  # not in the previous version: counts
        ]
    ).assign(reason_code=["DEC", "DEC", "INC", "CLOSED_CHARGED_OFF", "X", "DEC"])
    previous = pd.DataFrame(
        {
            "merchant_id": ["a", "b", "c", "d", "e"],
            "decision": ["keep", "keep", "keep", "keep", "keep"],
            "change_capped": [False] * 5,
            "target_line": [50.0, 120.0, 150.0, 100.0, 100.0],
            "credit_line": [100.0] * 5,
        }
    )
    move = book_move(book, previous)
    assert (move.cut, move.raised, move.closed, move.continued) == (2, 0, 1, 2)
    assert move.closed_charged_off == 1 and move.moved == 3
    assert "1 closed after a charge-off, 2 continuing a decision already taken" in (move.describe())


def test_breaker_trips_over_the_limit_only_and_says_how_to_force() -> None:
    move = book_move(BOOK, PREVIOUS)
    assert check_breaker(move, 0.7, as_of=DAY, live_version="v1", force_reason=None) is None
    with pytest.raises(LimitsBreakerError) as tripped:
        check_breaker(move, 0.5, as_of=DAY, live_version="v1", force_reason=None)
    text = str(tripped.value)
    assert "66.7% of the book (6 of 9 lines: 2 cut, 1 raised, 1 frozen, 1 unfrozen" in text
    assert "limit of 50.0%" in text and "limits v1 stay live" in text
    assert '--force --reason "why"' in text and isinstance(tripped.value, YidaiError)
    assert check_breaker(move, 0.5, as_of=DAY, live_version="v1", force_reason="ok") == "ok"
    # a forced run that did not need it records no override
    assert check_breaker(move, 0.7, as_of=DAY, live_version="v1", force_reason="ok") is None


def test_the_breaker_setting_is_read_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from yidai.core.settings import Settings, get_settings, reset_settings_cache

    monkeypatch.delenv("YIDAI_LIMITS_MAX_CHANGE_SHARE", raising=False)
    reset_settings_cache()
    assert get_settings().limits_max_change_share == 0.2
    monkeypatch.setenv("YIDAI_LIMITS_MAX_CHANGE_SHARE", "0.35")
    reset_settings_cache()
    assert get_settings().limits_max_change_share == 0.35
    for bad in ("0", "1.5", "lots"):
        monkeypatch.setenv("YIDAI_LIMITS_MAX_CHANGE_SHARE", bad)
        with pytest.raises(ValidationError, match="limits_max_change_share"):
            Settings()
    reset_settings_cache()
