"""Readers of the published merchant limits (the scoring service and the dashboards).

``<serving>/limits/CURRENT`` names the live version; ``versions/<version>/limits.parquet``
holds one row per merchant (the publish store's default layout, :mod:`yidai.core.publishing`).
:func:`load_published_limits` builds an in-memory lookup once per version;
:func:`current_limits_pointer` is cheap enough to call on every request to notice a new
version (hot reload).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yidai.core import publishing
from yidai.core.errors import YidaiError

if TYPE_CHECKING:
    import pandas as pd

AREA = "limits"
LIMITS_FILE = "limits.parquet"
CHANGES_FILE = "changes.parquet"
SUMMARY_FILE = "summary.json"
SUMMARY_BY_GRADE_FILE = "summary_by_grade.parquet"
READ_COLUMNS = (
    "merchant_id",
    "account_id",
    "credit_line",
    "outstanding",
    "available",
    "status",
    "decision",
    "reason_code",
    "grade",
)


def limits_root(serving_dir: Path) -> Path:
    """``<serving>/limits``."""
    return Path(serving_dir) / AREA


@dataclass(frozen=True, slots=True)
class MerchantLimit:
    """The published line of one merchant."""

    merchant_id: str
    account_id: str | None
    credit_line: float
    outstanding: float
    available: float
    status: str  # active | frozen | none
    decision: str  # new | increase | keep | decrease | freeze | none
    reason_code: str
    grade: str

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


class PublishedLimits:
    """One published limits version, indexed by merchant id (built once, read-only)."""

    def __init__(self, version: str, as_of: date, table: Mapping[str, Any]) -> None:
        """``table``: the ``READ_COLUMNS`` by name (arrays, lists or a DataFrame)."""
        self.version = version
        self.as_of = as_of
        self._ids = np.asarray(table["merchant_id"], dtype=object).astype(str)
        self._index = dict(zip(self._ids.tolist(), range(len(self._ids)), strict=True))
        self._account = np.asarray(table["account_id"], dtype=object)
        self._line = np.asarray(table["credit_line"], dtype=np.float64)
        self._outstanding = np.asarray(table["outstanding"], dtype=np.float64)
        self._available = np.asarray(table["available"], dtype=np.float64)
        self._status = np.asarray(table["status"], dtype=object).astype(str)
        self._decision = np.asarray(table["decision"], dtype=object).astype(str)
        self._reason = np.asarray(table["reason_code"], dtype=object).astype(str)
        self._grade = np.asarray(table["grade"], dtype=object).astype(str)
        self._by_account = {
            str(a): i for i, a in enumerate(self._account.tolist()) if not _missing(a)
        }

    def by_account(self, account_id: str) -> MerchantLimit | None:
        """The published line with this account id, or None."""
        i = self._by_account.get(account_id)
        return None if i is None else self.get(str(self._ids[i]))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, merchant_id: object) -> bool:
        return merchant_id in self._index

    def get(self, merchant_id: str) -> MerchantLimit | None:
        """The merchant's published line, or None if the merchant is not in this version."""
        i = self._index.get(merchant_id)
        if i is None:
            return None
        account = self._account[i]
        return MerchantLimit(
            merchant_id=merchant_id,
            account_id=None if _missing(account) else str(account),
            credit_line=float(self._line[i]),
            outstanding=float(self._outstanding[i]),
            available=float(self._available[i]),
            status=str(self._status[i]),
            decision=str(self._decision[i]),
            reason_code=str(self._reason[i]),
            grade=str(self._grade[i]),
        )


def current_limits_pointer(serving_dir: Path) -> str | None:
    """The live limits version id (reads one tiny file), or None if nothing is published."""
    pointer = publishing.read_pointer(limits_root(serving_dir))
    return None if pointer is None else str(pointer["version"])


def load_published_limits(serving_dir: Path, version: str | None = None) -> PublishedLimits:
    """Load the live (or the given) limits version; :class:`YidaiError` if there is none."""
    root = limits_root(serving_dir)
    if version is None:
        version = current_limits_pointer(serving_dir)
        if version is None:
            raise YidaiError(
                f"no merchant limits published under {root}; run `yidai limits refresh`"
            )
    manifest = publishing.read_manifest(root, version)
    # heavy: pyarrow's Parquet reader (a fifth of pandas' import time, which a worker skips)
    import pyarrow.parquet as pq

    # ParquetFile.read and to_pylist: read_table's datasets and to_numpy import pandas
    read = pq.ParquetFile(publishing.version_dir(root, version) / LIMITS_FILE).read(
        columns=list(READ_COLUMNS)
    )
    table = {name: read.column(name).to_pylist() for name in READ_COLUMNS}
    return PublishedLimits(version, date.fromisoformat(str(manifest["as_of"])), table)


def _missing(value: Any) -> bool:
    """None or NaN (a line without an account)."""
    return value is None or (isinstance(value, float) and value != value)


def read_limits_table(
    serving_dir: Path, name: str = LIMITS_FILE, version: str | None = None
) -> pd.DataFrame:
    """A whole table of the live (or given) version: limits, changes or summary by grade."""
    # heavy: pandas, for the dashboards' and the CLI's tables
    import pandas as pd

    version = version or current_limits_pointer(serving_dir)
    if version is None:
        raise YidaiError(f"no merchant limits published under {limits_root(serving_dir)}")
    return pd.read_parquet(publishing.version_dir(limits_root(serving_dir), version) / name)


def read_limits_summary(serving_dir: Path, version: str | None = None) -> dict[str, Any]:
    """The run summary of the live (or given) version."""
    version = version or current_limits_pointer(serving_dir)
    if version is None:
        raise YidaiError(f"no merchant limits published under {limits_root(serving_dir)}")
    path = publishing.version_dir(limits_root(serving_dir), version) / SUMMARY_FILE
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def read_limit_runs(serving_dir: Path) -> pd.DataFrame:
    """One summary row per refresh run (empty if none), for the dashboards."""
    # heavy: pandas, for the dashboards' tables
    import pandas as pd

    path = limits_root(serving_dir) / "runs.parquet"
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()
