"""Nightly batch limit refresh of small merchants' revolving credit lines, and its readers.

Writers: :func:`refresh_limits` (real loaders) and :func:`run_refresh` (loaded inputs).
Readers (scoring service, dashboards): :func:`load_published_limits`,
:func:`current_limits_pointer`, :func:`read_limits_table`, :func:`read_limits_summary`,
:func:`read_limit_runs`.  Readers import nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from yidai.jobs.limits.serving import (
    MerchantLimit,
    PublishedLimits,
    current_limits_pointer,
    load_published_limits,
    read_limit_runs,
    read_limits_summary,
    read_limits_table,
)

if TYPE_CHECKING:
    from yidai.jobs.limits.refresh import RefreshResult, refresh_limits, run_refresh

__all__ = [
    "MerchantLimit",
    "PublishedLimits",
    "RefreshResult",
    "current_limits_pointer",
    "load_published_limits",
    "read_limit_runs",
    "read_limits_summary",
    "read_limits_table",
    "refresh_limits",
    "run_refresh",
]


def __getattr__(name: str) -> Any:
    """The writers, imported on first use (DuckDB, the models): the readers need neither."""
    if name in ("RefreshResult", "refresh_limits", "run_refresh"):
        # deferred: the refresh's heavy dependencies, for the batch only
        from yidai.jobs.limits import refresh

        return getattr(refresh, name)
    raise AttributeError(name)
