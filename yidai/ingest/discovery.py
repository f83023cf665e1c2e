"""Find the files of a landing zone, in the order ingestion must load them.

Nothing outside the landing directory is ever read: symbolic links (to files or folders)
and entries that are not regular files or folders are refused, and names starting with
``.`` or ``_`` (hidden, marker and temporary files) are skipped and listed with the reason.

Layout: ``<landing>/<source>/dt=YYYY-MM-DD/<name>.parquet`` (or ``.csv``).  Master sources come
first (in contract order, so referenced masters precede the ones that refer to them), then the
event sources; within a source, delivery days in order, then file names.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

from yidai.core.contracts import EVENT_SOURCES, MASTER_SOURCES, get_contract
from yidai.core.errors import YidaiError

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
class SkippedEntry:
    """A landing entry passed over on purpose (hidden or temporary name), and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Discovery:
    """The files to consider, landing entries ignored (unknown sources), and entries skipped
    for their names (``.`` or ``_`` prefix: hidden, marker or temporary files)."""

    files: list[LandingFile]
    ignored: list[str]
    skipped: list[SkippedEntry] = field(default_factory=list)


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


def _skip_reason(entry: Path) -> str:
    kind = "folder" if entry.is_dir() and not entry.is_symlink() else "file"
    if entry.name.startswith("."):
        return f"hidden {kind} (name starts with '.'): not ingested"
    return f"{kind} name starts with '_' (marker or temporary file): not ingested"


def refusal(entry: Path, root: Path, *, folder: bool) -> str | None:
    """Why ``entry`` must not be read, or None: a symbolic link (never followed), a path
    resolving outside ``root`` (the resolved landing directory), or not a regular file
    (``folder``: not a directory).  Only ``lstat`` is used: a link's target is never opened."""
    try:
        mode = entry.lstat().st_mode
    except OSError as exc:
        return f"refused: cannot stat the entry ({exc.strerror or type(exc).__name__})"
    if stat.S_ISLNK(mode):
        return "refused: symbolic link (links are never followed)"
    if not entry.resolve().is_relative_to(root):
        return "refused: resolves outside the landing directory"
    if folder and not stat.S_ISDIR(mode):
        return None  # the caller reports a misplaced file
    if not folder and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "refused: not a regular file (FIFO, socket or device)"
    return None


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
    root = landing.resolve()
    wanted_days = None if days is None else {parse_day(d) for d in days}
    order = source_order(sources)
    files: list[LandingFile] = []
    skipped: list[SkippedEntry] = []

    def rel(entry: Path) -> str:
        return entry.relative_to(landing).as_posix()

    def skip(entry: Path) -> None:
        skipped.append(SkippedEntry(rel(entry), _skip_reason(entry)))

    ignored = []
    for entry in sorted(landing.iterdir()):
        if sources is None and _hidden(entry.name):
            skip(entry)
        elif entry.name not in order and sources is None:
            ignored.append(entry.name)
    for source in order:
        source_dir = landing / source
        if not source_dir.is_dir() and not source_dir.is_symlink():
            continue
        refused = refusal(source_dir, root, folder=True)
        if refused is None and not source_dir.is_dir():
            refused = "not a folder"
        if refused is not None:
            files.append(LandingFile(source_dir, rel(source_dir), source, None, None, refused))
            continue
        day_dirs: list[tuple[date, Path]] = []
        for entry in sorted(source_dir.iterdir()):
            if _hidden(entry.name):
                skip(entry)
                continue
            match = _DAY_FOLDER.match(entry.name)
            problem = refusal(entry, root, folder=True)
            day = _folder_day(match.group(1)) if match and problem is None else None
            if problem is None and (day is None or not entry.is_dir()):
                day, problem = None, "not a delivery folder named dt=YYYY-MM-DD"
            if problem is not None:
                files.append(LandingFile(entry, rel(entry), source, day, None, problem))
                continue
            assert day is not None
            if wanted_days is None or day in wanted_days:
                day_dirs.append((day, entry))
        for day, day_dir in sorted(day_dirs):
            for path in sorted(day_dir.iterdir()):
                if _hidden(path.name):
                    skip(path)
                    continue
                fmt = SUFFIXES.get(path.suffix.lower())
                problem = refusal(path, root, folder=False)
                if problem is None and path.is_dir():
                    problem = "unexpected folder inside a delivery folder"
                elif problem is None and fmt is None:
                    problem = "unsupported file type (expected .parquet or .csv)"
                files.append(LandingFile(path, rel(path), source, day, fmt, problem))
    return Discovery(files, ignored, skipped)


def _folder_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
