"""``yidai train`` and ``yidai models``: help, and clear refusals of bad arguments."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from yidai.cli import app
from yidai.core.errors import YidaiError


def test_train_help_and_bad_arguments() -> None:
    runner = CliRunner()
    help_result = runner.invoke(app, ["train", "--help"])
    assert help_result.exit_code == 0 and "--all" in help_result.output
    for args, message in (
        (["train"], "--model NAME"),
        (["train", "--model", "credit_pd"], "unknown model"),
        (["train", "--model", "sme_pd", "--as-of", "yesterday"], "not a date"),
    ):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, YidaiError), args
        assert message in str(result.exception)


def test_models_list_and_promote_on_an_empty_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.training import MODEL_SPECS
    from yidai.core.settings import reset_settings_cache
    from yidai.jobs.pipeline import MODEL_NAMES

    assert tuple(MODEL_SPECS) == MODEL_NAMES  # the DAGs and the CLI train every spec
    monkeypatch.setenv("YIDAI_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    reset_settings_cache()
    runner = CliRunner()
    assert "promote" in runner.invoke(app, ["models", "--help"]).output
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "no registered versions of personal_pd" in listed.output
    for args, message in (
        (["models", "list", "--model", "credit_pd"], "unknown model 'credit_pd'"),
        (["models", "list", "--latest", "0"], "latest must be >= 1"),
        (["models", "promote", "sme_pd", "1", "--reason", "review"], "sme_pd has no version"),
    ):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, YidaiError), args
        assert message in str(result.exception)
    reset_settings_cache()
