"""The book's definitions, in one place: committed, drawn, available, exposure, utilisation,
frozen share, charged-off loss, and the liquidity figures built on them.

Every reader of the revolving book uses these functions: the nightly limit refresh (its
published ``available``/``utilisation`` and its exposure summary), the scoring service (a
line's ``available``), the Merchant limits dashboard (its tiles and bars) and the monitoring
job (the liquidity check).  They take scalars or aligned arrays; ``status`` is a line's
status (``active`` | ``frozen`` | ``none``): only an active line can be drawn, a frozen line
still owes its balance, a line with status ``none`` (never opened, closed, charged off)
neither commits nor owes anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ArrayLike = Any  # a float, a sequence or a numpy array (pandas columns work too)


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _is(status: ArrayLike, value: str) -> np.ndarray:
    return np.asarray(status, dtype=object) == value


def committed(line: ArrayLike, status: ArrayLike) -> np.ndarray:
    """What the bank has promised to lend: ``committed = line if status == active else 0``."""
    return np.where(_is(status, "active"), _arr(line), 0.0)


def drawn(outstanding: ArrayLike, status: ArrayLike) -> np.ndarray:
    """What is owed on open lines:
    ``drawn = outstanding if status in (active, frozen) else 0``."""
    owed = _is(status, "active") | _is(status, "frozen")
    return np.where(owed, np.maximum(_arr(outstanding), 0.0), 0.0)


def available(line: ArrayLike, outstanding: ArrayLike, status: ArrayLike) -> np.ndarray:
    """What can still be drawn:
    ``available = max(line - outstanding, 0) if status == active else 0``."""
    room = np.maximum(_arr(line) - _arr(outstanding), 0.0)
    return np.where(_is(status, "active"), room, 0.0)


def exposure(line: ArrayLike, outstanding: ArrayLike, status: ArrayLike) -> np.ndarray:
    """The most the bank can lose on a line: ``exposure = drawn + available`` (an active line:
    ``max(line, outstanding)``; a frozen one: its balance; no line: 0)."""
    return drawn(outstanding, status) + available(line, outstanding, status)


def utilisation(outstanding: ArrayLike, line: ArrayLike, status: ArrayLike) -> float:
    """Share of the active lines drawn:
    ``utilisation = sum(drawn of active lines) / sum(committed)`` (NaN if nothing is)."""
    active = _is(status, "active")
    total = float(committed(line, status).sum())
    owed = float(np.where(active, np.maximum(_arr(outstanding), 0.0), 0.0).sum())
    return owed / total if total > 0 else float("nan")


def line_utilisation(outstanding: ArrayLike, line: ArrayLike) -> np.ndarray:
    """One line's utilisation: ``outstanding / line`` (0 for a line of 0)."""
    lines = _arr(line)
    return np.where(lines > 0, _arr(outstanding) / np.where(lines > 0, lines, 1.0), 0.0)


def frozen_share(status: ArrayLike) -> float:
    """Frozen lines among open ones: ``frozen / (active + frozen)`` (NaN if none is open)."""
    frozen = int(_is(status, "frozen").sum())
    open_ = frozen + int(_is(status, "active").sum())
    return frozen / open_ if open_ else float("nan")


def charged_off_loss(charged_off: ArrayLike, recovered: ArrayLike) -> np.ndarray:
    """Net loss of written-off balances: ``charged_off - recovered``."""
    return _arr(charged_off) - _arr(recovered)


def undrawn_commitment(line: ArrayLike, outstanding: ArrayLike, status: ArrayLike) -> float:
    """Liquidity: the most the book could draw tomorrow, ``sum(available)``."""
    return float(available(line, outstanding, status).sum())


def drawn_share(drawn_amount: float, undrawn: float) -> float:
    """Liquidity: share of the undrawn commitment drawn in a day,
    ``drawn that day / undrawn commitment at its start`` (NaN if nothing was undrawn)."""
    return drawn_amount / undrawn if undrawn > 0 else float("nan")
