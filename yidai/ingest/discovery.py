"""Find the files of a landing zone, in the order ingestion must load them.

Layout: ``<landing>/<source>/dt=YYYY-MM-DD/<name>.parquet`` (or ``.csv``).  Master sources come
first (in contract order, so referenced masters precede the ones that refer to them), then the
event sources; within a source, delivery days in order, then file names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from yidai.contracts import EVENT_SOURCES, MASTER_SOURCES, get_contract
from yidai.errors import YidaiError

FileFormat = Literal["parquet", "csv"]
SUFFIXES: dict[str, FileFormat] = {".parquet": "parquet", ".csv": "csv"}
_DAY_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class LandingFile:
    """One delivered file, or a landing entry that cannot be ingested (``problem`` set)."""

    path: Path
    rel_path: str
    source: str
    day: date | None
    fmt: FileFormat | None
    problem: str | None = None


@dataclass(frozen=True)
class Discovery:
    """The files to consider, and landing entries ignored (unknown sources, hidden files)."""

    files: list[LandingFile]
    ignored: list[str]


def parse_day(value: str | date) -> date:
    """A delivery day from ``YYYY-MM-DD`` (a clear error otherwise)."""
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise YidaiError(f"invalid day {value!r}; expected YYYY-MM-DD") from None


def source_order(sources: Iterable[str] | None = None) -> list[str]:
    """Masters first, then events, each in contract order; validates requested names."""
    ordered = [*MASTER_SOURCES, *EVENT_SOURCES]
    if sources is None:
        return ordered
    wanted = {get_contract(s).name for s in sources}
    return [s for s in ordered if s in wanted]


def _hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def discover(
    landing: Path,
    sources: Iterable[str] | None = None,
    days: Iterable[str | date] | None = None,
) -> Discovery:
    """All landing files of ``sources`` (default: every contract) on ``days`` (default: all)."""
    if not landing.exists():
        raise YidaiError(f"landing directory {landing} does not exist")
    if not landing.is_dir():
        raise YidaiError(f"landing path {landing} is not a directory")
    wanted_days = None if days is None else {parse_day(d) for d in days}
    order = source_order(sources)
    files: list[LandingFile] = []
    ignored = [
        entry.name
        for entry in sorted(landing.iterdir())
        if entry.name not in order and not _hidden(entry.name) and sources is None
    ]
    for source in order:
        source_dir = landing / source
        if not source_dir.is_dir():
            continue
        day_dirs: list[tuple[date, Path]] = []
        for entry in sorted(source_dir.iterdir()):
            if _hidden(entry.name):
                continue
            match = _DAY_FOLDER.match(entry.name)
            day = _folder_day(match.group(1)) if match and entry.is_dir() else None
            if day is None:
                files.append(
                    LandingFile(
                        entry,
                        entry.relative_to(landing).as_posix(),
                        source,
                        None,
                        None,
                        "not a delivery folder named dt=YYYY-MM-DD",
                    )
                )
                continue
            if wanted_days is None or day in wanted_days:
                day_dirs.append((day, entry))
        for day, day_dir in sorted(day_dirs):
            for path in sorted(day_dir.iterdir()):
                if _hidden(path.name):
                    continue
                fmt = SUFFIXES.get(path.suffix.lower())
                problem = None
                if path.is_dir():
                    problem = "unexpected folder inside a delivery folder"
                elif fmt is None:
                    problem = "unsupported file type (expected .parquet or .csv)"
                rel = path.relative_to(landing).as_posix()
                files.append(LandingFile(path, rel, source, day, fmt, problem))
    return Discovery(files, ignored)


def _folder_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
