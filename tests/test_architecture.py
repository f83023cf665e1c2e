"""The layers of docs/architecture.md hold: imports run only downward and form no cycle.

The contracts live in pyproject.toml ([tool.importlinter]); this runs them as ``make lint``
does, so ``make test`` fails on an upward import or a cycle too.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout or "broken" not in done.stdout.lower(), done.stdout


def test_the_layers_name_every_package_of_ours() -> None:
    """A new package must be placed in a layer, or the contract would not see it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    ours = {p.name for p in (ROOT / "yidai").iterdir() if (p / "__init__.py").exists()}
    unplaced = sorted(f"yidai.{p}" for p in ours if f"yidai.{p}" not in named)
    assert unplaced == [], f"packages in no layer: {unplaced}"
    assert set(config["root_packages"]) - {"yidai"} <= named
