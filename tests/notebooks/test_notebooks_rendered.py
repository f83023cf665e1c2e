"""The rendered notebooks under docs/notebooks/ (``make docs``) are there, carry outputs and
figures, and were rendered from the committed sources (a stale rendering fails)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAMES = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def _renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_notebooks", ROOT / "scripts" /
                                                  "render_notebooks.py")  # fmt: skip
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_rendered_notebook_is_current_and_shows_its_outputs(name: str) -> None:
    renderer = _renderer()
    html_file = ROOT / "docs" / "notebooks" / f"{name}.html"
    assert html_file.exists(), f"run `make docs` to render {name}"
    html = html_file.read_text(encoding="utf-8")
    mark = re.match(rf"<!-- {renderer.SOURCE_MARK}: ([0-9a-f]{{64}}) -->", html)
    assert mark, f"{html_file} was not written by scripts/render_notebooks.py"
    digest = renderer.source_digest(ROOT / "notebooks" / f"{name}.ipynb")
    assert mark.group(1) == digest, f"{name} changed since it was rendered: run `make docs`"
    assert html.count("data:image/png;base64") >= 1  # the figures are in the page
    assert "Traceback" not in html and "jp-OutputArea" in html
