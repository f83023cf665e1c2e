"""The notebooks are committed without outputs, and all three run end to end on one small
simulation shared by the session (so they never rot)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat import NotebookNode

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("01_explore_sources", "02_credit_model_development", "03_fraud_model")


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_committed_without_outputs(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip outputs"
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "from yidai" in sources  # imports the project's own functions


def run_notebook(name: str, home: Path, **env: str) -> NotebookNode:
    """Execute ``name`` on YIDAI_HOME=``home`` (a failing cell raises) and return it."""
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(home)}}
    )
    client.execute(env={**os.environ, "YIDAI_HOME": str(home), **env})
    return nb


def outputs_of(nb: NotebookNode) -> list[NotebookNode]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def text_of(nb: NotebookNode) -> str:
    parts = []
    for o in outputs_of(nb):
        parts.append(o.get("text", "") + o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def figures_of(nb: NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs_of(nb))


def test_explore_notebook_runs_on_the_small_simulation(notebook_home: Path) -> None:
    nb = run_notebook("01_explore_sources", notebook_home)
    assert not [o for o in outputs_of(nb) if o.get("output_type") == "error"]
    assert "approval_rate" in text_of(nb)


def test_credit_notebook_trains_and_scores_against_the_oracle(notebook_home: Path) -> None:
    # Merchant loans: the only product with enough matured defaults in a tiny simulation.
    nb = run_notebook("02_credit_model_development", notebook_home, YIDAI_NB_PRODUCT="merchant")
    text = text_of(nb)
    assert "merchant_pd:" in text and "matured applications" in text
    for metric in ("AUC", "KS", "score PSI", "oracle_auc", "expected_rate"):
        assert metric in text, metric
    assert "reason 1" in text  # reason codes of the riskiest applicants
    assert figures_of(nb) >= 4  # importance, calibration + ROC, score distribution, oracle


def test_fraud_notebook_measures_what_the_fraud_desk_sees(notebook_home: Path) -> None:
    nb = run_notebook("03_fraud_model", notebook_home, YIDAI_NB_FRAUD_DAYS="120")
    text = text_of(nb)
    for metric in ("average precision", "card precision@100", "amount-weighted recall"):
        assert metric in text, metric
    assert "caught_at_1pct" in text  # fraud by scenario from the simulator's truth
    assert figures_of(nb) >= 4  # label delay, importance, recall / precision@k, scenarios
