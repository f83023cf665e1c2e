"""The publish store: atomic versions, pointer swap, pruning, both pointer formats."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from yidai.core import publishing
from yidai.core.errors import YidaiError
from yidai.core.publishing import Layout

FLAT_TEXT = Layout(versions="", manifest="meta.json", pointer="text")
FLAT_JSON = Layout(versions="", manifest="meta.json", version_key="snapshot_id")
LAYOUTS = [publishing.DEFAULT, FLAT_JSON, FLAT_TEXT]


def _write(root: Path, version: str, text: str, layout: Layout = publishing.DEFAULT) -> Path:
    return publishing.write_version(
        root,
        version,
        {"version": version},
        lambda tmp: (tmp / "data.txt").write_text(text, encoding="utf-8"),
        layout,
    )


def _publish(root: Path, version: str, text: str, layout: Layout = publishing.DEFAULT) -> None:
    _write(root, version, text, layout)
    publishing.publish(root, version, {"as_of": version}, layout)


def _live_text(root: Path, layout: Layout = publishing.DEFAULT) -> str:
    version = publishing.current_version(root, layout)
    assert version is not None
    path = publishing.version_dir(root, version, layout) / "data.txt"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("layout", LAYOUTS, ids=["limits", "snapshots", "tables"])
def test_publish_then_read_each_layout(tmp_path: Path, layout: Layout) -> None:
    assert publishing.read_pointer(tmp_path, layout) is None
    assert publishing.current_version(tmp_path, layout) is None
    assert publishing.list_versions(tmp_path, layout) == []
    _publish(tmp_path, "v1", "one", layout)
    _publish(tmp_path, "v2", "two", layout)
    assert publishing.current_version(tmp_path, layout) == "v2"
    assert _live_text(tmp_path, layout) == "two"
    assert publishing.version_names(tmp_path, layout) == ["v1", "v2"]
    assert [m["version"] for m in publishing.list_versions(tmp_path, layout)] == ["v1", "v2"]
    assert (publishing.version_dir(tmp_path, "v1", layout) / layout.manifest).is_file()
    # no temporary file or folder is left behind
    assert not [p for p in tmp_path.rglob(".*")]


def test_pointer_formats_on_disk(tmp_path: Path) -> None:
    limits, snaps, tables = tmp_path / "limits", tmp_path / "snaps", tmp_path / "tables"
    _publish(limits, "v1", "x")
    _publish(snaps, "s1", "x", FLAT_JSON)
    _publish(tables, "t1", "x", FLAT_TEXT)
    assert json.loads((limits / "CURRENT").read_text()) == {"version": "v1", "as_of": "v1"}
    assert (limits / "versions" / "v1" / "manifest.json").is_file()
    assert json.loads((snaps / "CURRENT").read_text()) == {"snapshot_id": "s1", "as_of": "s1"}
    assert (snaps / "s1" / "meta.json").is_file()
    assert (tables / "CURRENT").read_text() == "t1"
    assert (tables / "t1" / "meta.json").is_file()


def test_reads_pointers_written_by_the_previous_code(tmp_path: Path) -> None:
    """Deployed folders: a text pointer (with a newline) and a JSON one with extra keys."""
    (tmp_path / "v7").mkdir()
    (tmp_path / "v7" / "meta.json").write_text('{"version": "v7"}')
    (tmp_path / "CURRENT").write_text("v7\n")
    assert publishing.read_pointer(tmp_path, FLAT_TEXT) == {"version": "v7"}
    assert publishing.current_version(tmp_path, FLAT_TEXT) == "v7"
    (tmp_path / "CURRENT").write_text(json.dumps({"snapshot_id": "v7", "rows": {"sme": 3}}))
    assert publishing.read_pointer(tmp_path, FLAT_JSON) == {"snapshot_id": "v7", "rows": {"sme": 3}}
    assert publishing.current_version(tmp_path, FLAT_JSON) == "v7"
    (tmp_path / "CURRENT").write_text("")
    assert publishing.read_pointer(tmp_path, FLAT_TEXT) is None


def test_a_broken_json_pointer_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "CURRENT").write_text("v1")
    with pytest.raises(YidaiError, match="not valid JSON"):
        publishing.read_pointer(tmp_path)


@pytest.mark.parametrize("layout", LAYOUTS, ids=["limits", "snapshots", "tables"])
def test_a_crash_mid_write_leaves_the_previous_version_live(tmp_path: Path, layout: Layout) -> None:
    _publish(tmp_path, "v1", "one", layout)

    def crash(tmp: Path) -> None:
        (tmp / "data.txt").write_text("half", encoding="utf-8")
        raise OSError("disk full")

    with pytest.raises(YidaiError, match="nothing was published") as info:
        publishing.write_version(tmp_path, "v2", {"version": "v2"}, crash, layout)
    assert isinstance(info.value.__cause__, OSError)
    assert publishing.current_version(tmp_path, layout) == "v1"
    assert _live_text(tmp_path, layout) == "one"
    assert publishing.version_names(tmp_path, layout) == ["v1"]
    assert not publishing.version_dir(tmp_path, "v2", layout).exists()
    with pytest.raises(YidaiError, match="not complete"):
        publishing.publish(tmp_path, "v2", {}, layout)
    assert publishing.current_version(tmp_path, layout) == "v1"


def test_leftovers_of_a_killed_writer_are_never_listed_nor_published(tmp_path: Path) -> None:
    """A process killed mid-write leaves a temporary folder, or (older code) a folder without
    its manifest: neither is a version; a later write of that version replaces the leftover."""
    _publish(tmp_path, "v1", "one")
    base = publishing.versions_root(tmp_path)
    (base / ".tmp-v2-999-deadbeef").mkdir()
    (base / ".tmp-v2-999-deadbeef" / "data.txt").write_text("half")
    (base / "v3").mkdir()
    (base / "v3" / "data.txt").write_text("half")
    assert publishing.version_names(tmp_path) == ["v1"]
    assert not publishing.is_complete(tmp_path, "v3")
    with pytest.raises(YidaiError, match="not complete"):
        publishing.publish(tmp_path, "v3")
    _publish(tmp_path, "v3", "three")
    assert _live_text(tmp_path) == "three"
    assert publishing.version_names(tmp_path) == ["v1", "v3"]


def test_a_complete_version_is_not_rewritten(tmp_path: Path) -> None:
    first = _write(tmp_path, "v1", "one")
    again = _write(tmp_path, "v1", "other")
    assert again == first and (first / "data.txt").read_text() == "one"


@pytest.mark.parametrize("layout", LAYOUTS, ids=["limits", "snapshots", "tables"])
def test_prune_keeps_the_newest_and_the_live_one(tmp_path: Path, layout: Layout) -> None:
    for i in range(1, 5):
        _write(tmp_path, f"v{i}", str(i), layout)
        folder = publishing.version_dir(tmp_path, f"v{i}", layout)
        os.utime(folder, ns=(i * 10**9, i * 10**9))  # written in this order
    publishing.publish(tmp_path, "v1", {}, layout)  # the live one is the oldest
    removed = publishing.prune(tmp_path, 2, layout)
    assert sorted(removed) == ["v2", "v3"]
    assert publishing.version_names(tmp_path, layout) == ["v1", "v4"]
    assert publishing.current_version(tmp_path, layout) == "v1"
    assert _live_text(tmp_path, layout) == "1"
    publishing.publish(tmp_path, "v4", {}, layout)
    assert publishing.prune(tmp_path, 1, layout) == ["v1"]
    assert publishing.version_names(tmp_path, layout) == ["v4"]


def test_prune_leaves_temporary_folders_and_refuses_keep_zero(tmp_path: Path) -> None:
    _publish(tmp_path, "v1", "one")
    tmp = publishing.versions_root(tmp_path) / ".tmp-v2-1-cafe"
    tmp.mkdir()
    assert publishing.prune(tmp_path, 1) == []
    assert tmp.is_dir()
    with pytest.raises(YidaiError, match="keep at least 1"):
        publishing.prune(tmp_path, 0)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "CURRENT"])
def test_bad_version_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(YidaiError, match="invalid version name"):
        _write(tmp_path, name, "x")
