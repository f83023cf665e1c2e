"""What an ingestion run did, file by file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from yidai.core.errors import YidaiError
from yidai.ingest.discovery import SkippedEntry

FileStatus = Literal["loaded", "skipped", "failed"]


@dataclass(frozen=True)
class FileResult:
    """The outcome of one landing file (``skipped``: already ingested with the same checksum)."""

    path: str
    source: str
    day: date | None
    status: FileStatus
    rows_landed: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_late: int = 0
    batch_id: str | None = None
    error: str | None = None

    def describe_error(self) -> str:
        """``<path>: <what is wrong>``."""
        return f"{self.path}: {self.error}"


@dataclass
class IngestReport:
    """Results of one :func:`yidai.ingest.ingest_landing` run."""

    landing_dir: Path
    warehouse_path: Path
    files: list[FileResult] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    skipped_entries: list[SkippedEntry] = field(default_factory=list)
    """Landing entries passed over for their names (hidden or temporary), with the reason."""
    seconds: float = 0.0

    def with_status(self, status: FileStatus) -> list[FileResult]:
        return [f for f in self.files if f.status == status]

    @property
    def failed(self) -> list[FileResult]:
        return self.with_status("failed")

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def rows_landed(self) -> int:
        return sum(f.rows_landed for f in self.files)

    @property
    def rows_loaded(self) -> int:
        return sum(f.rows_loaded for f in self.files)

    @property
    def rows_quarantined(self) -> int:
        return sum(f.rows_quarantined for f in self.files)

    def describe(self) -> str:
        """One line for the log: files by outcome, rows, time."""
        return (
            f"{len(self.with_status('loaded'))} file(s) loaded ({len(self.with_status('skipped'))}"
            f" skipped as already ingested, {len(self.skipped_entries)} hidden or temporary "
            f"entries skipped, {len(self.failed)} failed): {self.rows_landed} rows landed, "
            f"{self.rows_loaded} loaded, {self.rows_quarantined} quarantined in "
            f"{self.seconds:.1f} s"
        )

    def by_source(self) -> dict[str, dict[str, int]]:
        """Per source: files loaded / skipped / failed and rows landed / loaded / quarantined."""
        summary: dict[str, dict[str, int]] = {}
        for f in self.files:
            row = summary.setdefault(
                f.source,
                dict.fromkeys(
                    ("loaded", "skipped", "failed", "landed", "rows_loaded", "quarantined", "late"),
                    0,
                ),
            )
            row[f.status] += 1
            row["landed"] += f.rows_landed
            row["rows_loaded"] += f.rows_loaded
            row["quarantined"] += f.rows_quarantined
            row["late"] += f.rows_late
        return summary

    def raise_for_failures(self) -> None:
        """Raise a one-line :class:`YidaiError` naming every failed file, if any."""
        failed = self.failed
        if not failed:
            return
        if len(failed) == 1:
            raise YidaiError(f"1 file failed: {failed[0].describe_error()}")
        names = ", ".join(f.path for f in failed)
        raise YidaiError(f"{len(failed)} files failed (the rest was ingested): {names}")
