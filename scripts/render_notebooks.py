"""Render the notebooks to HTML under docs/notebooks/, with their outputs, so that a reader
sees the analysis without running anything (`make docs`).

The notebooks are committed without outputs; this runs each one on a small simulation (the
one the notebook tests use) in a temporary YIDAI_HOME and writes NAME.html with a comment
holding the SHA-256 of the notebook's source, which tests/notebooks checks against the
committed notebook (a stale rendering fails the suite).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: Extra environment per notebook (the small simulation's settings, as in the tests).
NOTEBOOK_ENV = {
    "02_credit_model_development": {"YIDAI_NB_PRODUCT": "merchant"},
    "03_fraud_model": {"YIDAI_NB_FRAUD_DAYS": "120"},
}
SOURCE_MARK = "yidai-notebook-source-sha256"


def source_digest(path: Path) -> str:
    """SHA-256 of a notebook's cell sources (outputs and metadata ignored)."""
    # deferred: `--help` answers without loading the notebook stack
    import nbformat

    nb = nbformat.read(path, as_version=4)
    text = "\n\x1e".join(f"{c.cell_type}\x1f{c.source}" for c in nb.cells)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def small_home(root: Path) -> Path:
    """A YIDAI_HOME with the ``notebook`` preset's simulation ingested (as in the tests)."""
    # deferred: after the caller's settings are cleared
    from simulator import SimConfig, simulate
    from yidai.core.settings import Settings
    from yidai.ingest import ingest_landing

    settings = Settings(home=root)
    simulate(SimConfig.preset("notebook"), settings.landing, settings.truth)
    ingest_landing(settings.landing, settings.warehouse)
    return root


def render(name: str, home: Path, out: Path) -> Path:
    """Execute notebook ``name`` on ``home`` and write ``out/name.html``."""
    # heavy: Jupyter's client and exporter
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(home)}}
    )
    client.execute(env={**os.environ, "YIDAI_HOME": str(home), **NOTEBOOK_ENV.get(name, {})})
    body, _ = HTMLExporter().from_notebook_node(nb)
    target = out / f"{name}.html"
    target.write_text(f"<!-- {SOURCE_MARK}: {source_digest(path)} -->\n{body}", encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebooks",
                        help="Folder of the HTML files (default: docs/notebooks).")  # fmt: skip
    parser.add_argument("names", nargs="*", help="Notebooks to render (default: all).")
    args = parser.parse_args(argv)
    names = args.names or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith(("YIDAI_", "MLFLOW_"))]:
        os.environ.pop(key)  # the rendering is reproducible: no caller settings leak in
    with tempfile.TemporaryDirectory(prefix="yidai-notebooks-") as tmp:
        t0 = time.perf_counter()
        print("simulating and ingesting the small world ...", flush=True)
        home = small_home(Path(tmp))
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name} ...", flush=True)
            target = render(name, home, args.out)
            print(f"    {target.relative_to(ROOT)} ({target.stat().st_size / 1e3:,.0f} kB)")
        print(f"done in {time.perf_counter() - t0:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
