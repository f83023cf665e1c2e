"""Versioned folders with an atomically swapped pointer, for files that online readers use.

Layout under a root (e.g. ``<serving>/limits``)::

    versions/<version>/...      one complete folder per version (written to a temporary
                                folder, then renamed into place: never seen half-written)
    CURRENT                     JSON ``{"version": ..., "as_of": ...}``, replaced with
                                ``os.replace`` so a reader sees the old or the new pointer

Readers read ``CURRENT`` and open the folder it names; versions are kept, so a reader that
read the old pointer can still finish reading the old version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from yidai.core.errors import YidaiError

POINTER = "CURRENT"
VERSIONS = "versions"
MANIFEST = "manifest.json"


def version_dir(root: Path, version: str) -> Path:
    """Folder of one version."""
    return root / VERSIONS / version


def is_complete(root: Path, version: str) -> bool:
    """True when the version's folder exists with its manifest (it was fully written)."""
    return (version_dir(root, version) / MANIFEST).is_file()


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` via a temporary file, fsync and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, sort_keys=True, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_version(
    root: Path, version: str, manifest: dict[str, Any], fill: Callable[[Path], None]
) -> Path:
    """Create ``versions/<version>`` atomically; ``fill(tmp_dir)`` writes its files.

    The manifest is written last, then the folder is renamed into place.  A version that
    already exists complete is left untouched (idempotent).  On any failure the temporary
    folder is removed and a :class:`YidaiError` names what failed.
    """
    final = version_dir(root, version)
    if is_complete(root, version):
        return final
    tmp = root / VERSIONS / f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
        write_json_atomic(tmp / MANIFEST, manifest)
        if final.exists():  # an incomplete leftover of a crashed run without a manifest
            shutil.rmtree(final)
        os.rename(tmp, final)
    except Exception as exc:
        raise YidaiError(
            f"could not write version {version} under {root}: {exc}; nothing was published"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(root: Path, version: str) -> dict[str, Any]:
    """The manifest of a complete version."""
    path = version_dir(root, version) / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise YidaiError(f"version {version} under {root} is unreadable: {exc}") from exc
    return data


def list_versions(root: Path) -> list[dict[str, Any]]:
    """Manifests of every complete version (unordered)."""
    base = root / VERSIONS
    if not base.is_dir():
        return []
    return [
        read_manifest(root, d.name)
        for d in base.iterdir()
        if not d.name.startswith(".") and (d / MANIFEST).is_file()
    ]


def read_pointer(root: Path) -> dict[str, Any] | None:
    """The published pointer (``{"version": ..., ...}``), or None if nothing is published."""
    try:
        text = (root / POINTER).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise YidaiError(f"cannot read {root / POINTER}: {exc}") from exc
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise YidaiError(f"{root / POINTER} is not valid JSON: {exc}") from exc
    return data


def publish(root: Path, version: str, pointer: dict[str, Any]) -> None:
    """Point ``CURRENT`` at a complete version (atomic ``os.replace``)."""
    if not is_complete(root, version):
        raise YidaiError(f"cannot publish version {version}: it is not complete under {root}")
    try:
        write_json_atomic(root / POINTER, {**pointer, "version": version})
    except OSError as exc:
        raise YidaiError(f"could not publish version {version} under {root}: {exc}") from exc
