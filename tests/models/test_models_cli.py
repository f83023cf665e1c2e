"""``yidai train``: help, and clear refusals of bad arguments before any work."""

from __future__ import annotations

from typer.testing import CliRunner

from yidai.cli import app
from yidai.errors import YidaiError


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
