"""CLI commands: train (registered by yidai.cli)."""

from __future__ import annotations

import datetime as dt

import typer

from yidai.core.catalogue import MODEL_NAMES


def register(app: typer.Typer) -> None:
    """Add ``train`` to the root app."""

    @app.command("train")
    def train(
        model: list[str] = typer.Option(
            [], "--model", "-m", help=f"Model to train (repeatable): {', '.join(MODEL_NAMES)}."
        ),
        all_models: bool = typer.Option(False, "--all", help="Train all four models."),
        as_of: str | None = typer.Option(
            None, "--as-of", help="Training date YYYY-MM-DD (default: last day in the warehouse)."
        ),
        margin: float = typer.Option(
            0.002, help="Promotion gate: the primary OOT metric must beat the champion by this."
        ),
        max_score_psi: float = typer.Option(
            0.25, help="Promotion gate: the score PSI (train vs OOT) must stay below this."
        ),
        label_delay_days: int | None = typer.Option(
            None,
            "--label-delay-days",
            min=0,
            help="Fraud: days before a payment's label counts (the gap between calibration "
            "and test). Default: YIDAI_FRAUD_LABEL_DELAY_DAYS, else measured on the data "
            "(the delay by which YIDAI_FRAUD_LABEL_DELAY_SHARE of the reports arrived).",
        ),
        train_days: int | None = typer.Option(
            None,
            "--train-days",
            min=2,
            help="Days of training before the gap; its last third (at most the default) "
            "stops the boosting and fits the calibrator. Default: all the history.",
        ),
        test_days: int | None = typer.Option(
            None,
            "--test-days",
            min=1,
            help="Days of the out-of-time test window. Default: 30 (fraud), 61 (credit).",
        ),
        tune_trials: int | None = typer.Option(
            None,
            "--tune-trials",
            min=0,
            help="Optuna trials of a hyperparameter search on rolling out-of-time folds "
            "(logged in MLflow). Default: YIDAI_TUNE_TRIALS (0: no search).",
        ),
        scorecard: bool = typer.Option(
            True,
            "--scorecard/--no-scorecard",
            help="Also train each credit model's WoE scorecard challenger (<model>_scorecard).",
        ),
    ) -> None:
        """Train, validate out of time, log to MLflow and register (champion/challenger).

        Credit models report AUC, Gini, KS, Brier, calibration by decile, lift, PSI and, on
        simulated data, the oracle AUC of the true PD; the fraud model adds average precision,
        card precision top-k (standard and per-day share) and amount-weighted recall.

        The model registered is refit on all labelled data (the hyperparameters and number
        of trees chosen out of time; calibrated on the latest labelled window); MLflow keeps
        both the out-of-time metrics and the refit's data range.  A one-week fraud protocol:
        ``--label-delay-days 7 --train-days 7 --test-days 7``.
        """
        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.table import Table

        # deferred: loaded when the command runs, so `yidai --help` starts fast
        from models.challengers import credit_models, train_scorecard_challenger
        from models.registry import GateConfig
        from models.training import get_spec, train_model, training_split
        from yidai.core.errors import YidaiError
        from yidai.core.settings import get_settings

        names = list(MODEL_NAMES) if all_models else list(dict.fromkeys(model))
        if not names:
            raise YidaiError("name a model with --model NAME (repeatable) or use --all")
        unknown = [n for n in names if n not in MODEL_NAMES]
        if unknown:
            raise YidaiError(f"unknown model(s) {unknown}; choose from {', '.join(MODEL_NAMES)}")
        try:
            day = dt.date.fromisoformat(as_of) if as_of else None
        except ValueError as exc:
            raise YidaiError(f"--as-of {as_of!r} is not a date YYYY-MM-DD") from exc
        gate = GateConfig(margin=margin, max_score_psi=max_score_psi)

        console = Console()
        table = Table("model", "version", "alias", "primary", "oracle gap", "reason")
        failures: list[str] = []
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            for name in names:
                task = progress.add_task(f"training {name}", total=None)
                try:
                    split = training_split(
                        get_spec(name),
                        get_settings(),
                        day,
                        label_delay_days=label_delay_days,
                        train_days=train_days,
                        test_days=test_days,
                    )
                    result = train_model(
                        name, as_of=day, gate=gate, split=split, tune_trials=tune_trials
                    )
                except YidaiError as exc:
                    # One model's bad data must not stop the others; reported at the end.
                    failures.append(f"{name}: {exc}")
                    continue
                finally:
                    progress.remove_task(task)
                primary = get_spec(name).primary_metric
                gap = result.metrics.get("oracle_gap")
                table.add_row(
                    name,
                    result.version,
                    result.alias,
                    f"{primary.removeprefix('oot_')} {result.metrics[primary]:.4f}",
                    "-" if gap is None else f"{gap:+.4f}",
                    result.gate_reason,
                )
                if not (scorecard and name in credit_models()):
                    continue
                try:
                    card = train_scorecard_challenger(name, as_of=day, split=split)
                except YidaiError as exc:
                    failures.append(f"{name} scorecard: {exc}")
                    continue
                card_gap = card.metrics.get("oracle_gap")
                table.add_row(
                    card.name,
                    card.version,
                    "challenger",
                    f"auc {card.metrics['oot_auc']:.4f}",
                    "-" if card_gap is None else f"{card_gap:+.4f}",
                    f"scorecard of {len(card.characteristics)} characteristics",
                )
        if table.row_count:
            console.print(table)
        if failures:
            raise YidaiError("; ".join(failures))
