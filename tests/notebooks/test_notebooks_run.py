"""The notebooks are committed without outputs, and the exploration notebook runs end to end
on a small simulation (so it never rots)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("01_explore_sources", "02_credit_model_development", "03_fraud_model")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs"
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "from yidai" in sources  # imports the project's own functions


def test_explore_notebook_runs_on_a_small_simulation(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("YIDAI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YIDAI_NB_CUSTOMERS", "300")
    monkeypatch.setenv("YIDAI_NB_MONTHS", "8")
    nb = nbformat.read(NOTEBOOKS / "01_explore_sources.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env=dict(os.environ))
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert (tmp_path / "home" / "landing" / "pos_transactions").is_dir()
