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


def _function_level_imports() -> list[tuple[str, int, str, bool]]:
    """(file, line, module, commented) of every import inside a function of our packages."""
    import ast

    found = []
    for package in (
        "yidai",
        "simulator",
        "features",
        "models",
        "scoring_service",
        "dashboards",
        "dags",
    ):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            tree = ast.parse("\n".join(lines))
            seen: set[int] = set()
            for fn in ast.walk(tree):
                if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(fn):
                    if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in seen:
                        continue
                    seen.add(node.lineno)
                    module = (
                        node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                    ) or ""
                    block = lines[node.lineno - 1 : node.end_lineno]
                    # a comment on the import, or on the line above the run of imports
                    # that it belongs to
                    above = node.lineno - 2
                    while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
                        above -= 1
                    commented = any("#" in line for line in block) or (
                        above >= 0 and lines[above].strip().startswith("#")
                    )
                    found.append((str(path.relative_to(ROOT)), node.lineno, module, commented))
    return found


# Compute functions whose source is fingerprinted (features/declarations.py): editing them
# would change a feature set's version, so their one import stays as it was declared.
FINGERPRINTED = {("features/definitions.py", "yidai.core.contracts")}


def test_imports_inside_functions_say_why() -> None:
    """An import is deferred into a function only for a heavy dependency (Airflow, MLflow,
    LightGBM, Streamlit, ...), or to keep the CLI's and the DAG files' start-up light, and
    a comment says so; anything else belongs at the top of the module."""
    silent = [
        f"{path}:{line} {module}"
        for path, line, module, commented in _function_level_imports()
        if not commented and (path, module) not in FINGERPRINTED
    ]
    assert silent == []
