"""The publish store: versioned folders with an atomically swapped pointer, for online readers.

Every published area (feature snapshots, merchant limits, the dashboards' tables) is a root
folder holding complete version folders and a ``CURRENT`` pointer naming the live one:

* a version is written into a hidden temporary folder, its files fsynced, its manifest written
  last, then renamed into place: a reader (or :func:`list_versions`) never sees half a version,
  and a crash mid-write leaves the previous version live;
* ``CURRENT`` is replaced with ``os.replace`` (after an fsync), so a reader sees the old or the
  new pointer; versions are kept until :func:`prune`, so a reader that read the old pointer can
  still finish reading the old version, and the live version is never pruned.

Where the folders sit, the manifest's name and the pointer's format are a :class:`Layout`.  The
on-disk layouts deployed today stay exactly as they are (the scoring service and dashboards read
them), each area keeps writing its own format:

==================  ============================================  ================  ==============
area                version folder                                manifest          ``CURRENT``
==================  ============================================  ================  ==============
merchant limits     ``<serving>/limits/versions/<version>/``      ``manifest.json`` JSON, key
                                                                                    ``version``
feature snapshots   ``<serving>/features/<set>/<snapshot_id>/``   ``meta.json``     JSON, key
                                                                                    ``snapshot_id``
dashboards' tables  ``<serving>/<area>/<version>/``               ``meta.json``     plain text:
                                                                                    the version
==================  ============================================  ================  ==============

A JSON pointer carries the version under ``Layout.version_key`` plus whatever the area adds
(e.g. the snapshot's metadata, so a reader needs one small file); a text pointer is the version
alone.  :func:`read_pointer` reads either format, per layout.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yidai.core.errors import YidaiError

POINTER = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True, slots=True)
class Layout:
    """How one area lays out its versions (the default is the merchant limits' layout)."""

    versions: str = VERSIONS  # sub-folder holding the versions; "" puts them under the root
    manifest: str = MANIFEST  # written last into each version: its presence marks it complete
    pointer: Literal["json", "text"] = "json"  # CURRENT: a JSON object, or the version as text
    version_key: str = "version"  # the key naming the version in a JSON pointer


DEFAULT = Layout()


def versions_root(root: Path, layout: Layout = DEFAULT) -> Path:
    """The folder holding the version folders."""
    return root / layout.versions if layout.versions else root


def version_dir(root: Path, version: str, layout: Layout = DEFAULT) -> Path:
    """Folder of one version."""
    return versions_root(root, layout) / version


def is_complete(root: Path, version: str, layout: Layout = DEFAULT) -> bool:
    """True when the version's folder exists with its manifest (it was fully written)."""
    return (version_dir(root, version, layout) / layout.manifest).is_file()


def _fsync_dir(path: Path) -> None:
    """Make a rename or new entry in ``path`` durable (best effort where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file, fsync and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file, fsync and ``os.replace``."""
    _write_atomic(path, json.dumps(payload, sort_keys=True, indent=1, default=str))


def _fsync_tree(folder: Path) -> None:
    """Flush every file written into ``folder`` (and the folders) to disk."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        else:
            _fsync_dir(path)
    _fsync_dir(folder)


def write_version(
    root: Path,
    version: str,
    manifest: dict[str, Any],
    fill: Callable[[Path], None],
    layout: Layout = DEFAULT,
) -> Path:
    """Create the version's folder atomically; ``fill(tmp_dir)`` writes its files.

    The files are fsynced, the manifest is written last, then the folder is renamed into
    place.  A version that already exists complete is left untouched (idempotent).  On any
    failure the temporary folder is removed and a :class:`YidaiError` names what failed (the
    original error is its ``__cause__``); the live version is unchanged.
    """
    if not version or version.startswith(".") or "/" in version or version == POINTER:
        raise YidaiError(f"invalid version name {version!r}")
    final = version_dir(root, version, layout)
    if is_complete(root, version, layout):
        return final
    parent = versions_root(root, layout)
    tmp = parent / f"{_TMP_PREFIX}{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        _fsync_tree(tmp)
        write_json_atomic(tmp / layout.manifest, manifest)
        if final.exists():  # an incomplete leftover of a crashed run without a manifest
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(parent)
    except Exception as exc:
        raise YidaiError(
            f"could not write version {version} under {root}: {exc}; nothing was published"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(root: Path, version: str, layout: Layout = DEFAULT) -> dict[str, Any]:
    """The manifest of a complete version."""
    path = version_dir(root, version, layout) / layout.manifest
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise YidaiError(f"version {version} under {root} is unreadable: {exc}") from exc
    return data


def _complete_dirs(root: Path, layout: Layout) -> list[Path]:
    base = versions_root(root, layout)
    if not base.is_dir():
        return []
    return [
        d
        for d in base.iterdir()
        if not d.name.startswith(".") and d.is_dir() and (d / layout.manifest).is_file()
    ]


def version_names(root: Path, layout: Layout = DEFAULT) -> list[str]:
    """Names of every complete version, oldest written first (half-written ones are skipped)."""
    dirs = _complete_dirs(root, layout)
    return [d.name for d in sorted(dirs, key=lambda d: (d.stat().st_mtime_ns, d.name))]


def list_versions(root: Path, layout: Layout = DEFAULT) -> list[dict[str, Any]]:
    """Manifests of every complete version, oldest written first."""
    return [read_manifest(root, name, layout) for name in version_names(root, layout)]


def read_pointer(root: Path, layout: Layout = DEFAULT) -> dict[str, Any] | None:
    """The published pointer (``{version_key: ..., ...}``), or None if nothing is published.

    A text pointer reads as ``{version_key: <its text>}``; an empty one as None.
    """
    path = root / POINTER
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise YidaiError(f"cannot read {path}: {exc}") from exc
    if layout.pointer == "text":
        version = text.strip()
        return {layout.version_key: version} if version else None
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise YidaiError(f"{path} is not valid JSON: {exc}") from exc
    return data


def current_version(root: Path, layout: Layout = DEFAULT) -> str | None:
    """The version ``CURRENT`` names, or None if nothing is published."""
    pointer = read_pointer(root, layout)
    return None if pointer is None else str(pointer[layout.version_key])


def publish(
    root: Path, version: str, pointer: dict[str, Any] | None = None, layout: Layout = DEFAULT
) -> None:
    """Point ``CURRENT`` at a complete version (atomic ``os.replace``).

    A JSON pointer holds ``pointer`` plus the version under ``layout.version_key``; a text
    pointer holds the version only.
    """
    if not is_complete(root, version, layout):
        raise YidaiError(f"cannot publish version {version}: it is not complete under {root}")
    try:
        if layout.pointer == "text":
            _write_atomic(root / POINTER, version)
        else:
            write_json_atomic(root / POINTER, {**(pointer or {}), layout.version_key: version})
    except OSError as exc:
        raise YidaiError(f"could not publish version {version} under {root}: {exc}") from exc


def prune(root: Path, keep: int, layout: Layout = DEFAULT) -> list[str]:
    """Remove all but the ``keep`` most recently written complete versions; returns the removed.

    The live version is never removed (it counts among the ``keep``), nor is anything
    half-written or hidden (a concurrent writer's temporary folder).
    """
    if keep < 1:
        raise YidaiError(f"keep at least 1 version (the live one), not {keep}")
    live = current_version(root, layout)
    names = version_names(root, layout)
    others = [n for n in names if n != live]
    room = keep - (1 if live in names else 0)
    removed = others[: max(len(others) - room, 0)]
    for name in removed:
        shutil.rmtree(version_dir(root, name, layout), ignore_errors=True)
    return removed
