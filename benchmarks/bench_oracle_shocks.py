"""Benchmark: where the lines' oracle gap sits, by how recently the borrower was shocked.

    uv run python benchmarks/bench_oracle_gap.py --frames-dir DIR ...   # saves the frames
    uv run python benchmarks/bench_oracle_shocks.py --frames-dir DIR
        [--models merchant_pd sme_pd] [--preset demo] [--n-merchants N] [--n-smes N] ...

Over the simulated period one merchant or SME in eight is hit by a shock: its latent state
drops once, by 1.2-2.2, from the first day of a month (``simulator.world``), and its
turnover, closed days, refunds or failed payments follow.  For each saved line frame this
rebuilds that world's entities (``simulator.world.build_world`` with the frame's seed and
the sizes given here, which must be the ones the frames were simulated with; no event is
simulated), fits the champion as production does (``models.training.fit_and_evaluate``,
validated out of time) and splits the test window's decisions by the month of the
borrower's shock against the decision's month: the same month, 1-2 months before, earlier,
after the decision, never.  Per group: decisions, defaults, the mean percentile rank of the
oracle's and the champion's scores among all the window's decisions (1: the riskiest), and
the window's oracle gap with the group left out.  The rank difference on a group with
defaults shows how much of the gap is that group's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_oracle_gap import SavedFrame, read_frame

from simulator import SimConfig

GROUPS = ("same month", "1-2 months before", "earlier", "after the decision", "never")


def shock_groups(shock_month: np.ndarray, decision_month: np.ndarray) -> np.ndarray:
    """The :data:`GROUPS` label of each decision, from its borrower's shock month (-1: none)."""
    since = decision_month - shock_month
    return np.select(
        [shock_month < 0, since == 0, (since >= 1) & (since <= 2), since > 2],
        ["never", "same month", "1-2 months before", "earlier"],
        "after the decision",
    )


def one_frame(saved: SavedFrame, config: SimConfig) -> pd.DataFrame:
    """Per shock group of one frame's test window: rows, defaults, mean ranks, gap without
    (``config``: the frame's world)."""
    from models.metrics import auc
    from models.training import fit_and_evaluate, get_spec, split_out_of_time
    from simulator.calendar import Calendar
    from simulator.world import build_world

    seed, model = saved.seed, saved.model
    fitted = fit_and_evaluate(get_spec(model), saved.data, split=saved.split, refit=False)
    test = split_out_of_time(saved.frame, saved.split).test
    calendar = Calendar.build(config.start, config.months)
    world = build_world(config, calendar)
    group = world.merchants if model == "merchant_pd" else world.smes
    who = test["entity_id"].str[1:].astype(int).to_numpy()
    day = (pd.to_datetime(test["ts"]).dt.normalize() - pd.Timestamp(config.start)).dt.days
    month = np.searchsorted(calendar.month_starts, day.to_numpy(), side="right") - 1
    labels = shock_groups(group.shock_month[who], month)
    y = test["label"].to_numpy(dtype=float)
    oracle = test["true_pd"].to_numpy()
    score = np.asarray(fitted.estimator.decision_function(test[saved.features]))
    oracle_rank = pd.Series(oracle).rank(pct=True).to_numpy()
    model_rank = pd.Series(score).rank(pct=True).to_numpy()
    rows = []
    for name in GROUPS:
        inside = labels == name
        rest = ~inside
        rows.append(
            {
                "seed": seed,
                "model": model,
                "group": name,
                "rows": int(inside.sum()),
                "defaults": int(y[inside].sum()),
                "oracle_rank": float(oracle_rank[inside].mean()) if inside.any() else np.nan,
                "model_rank": float(model_rank[inside].mean()) if inside.any() else np.nan,
                "gap": auc(y, oracle) - auc(y, score),
                "gap_without": auc(y[rest], oracle[rest]) - auc(y[rest], score[rest]),
            }
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames-dir", type=Path, required=True, help="bench_oracle_gap's frames")
    parser.add_argument("--models", nargs="+", default=["merchant_pd", "sme_pd"])
    parser.add_argument("--preset", default="demo", help="the frames' simulation preset")
    for entity in ("customers", "merchants", "smes"):
        parser.add_argument(f"--n-{entity}", type=int, help=f"the frames' number of {entity}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.models) - {"merchant_pd", "sme_pd"})
    if unknown:
        parser.error(f"only the line models have shocks: {unknown}")
    paths = sorted(
        p
        for p in args.frames_dir.glob("seed*_*.parquet")
        if p.stem.split("_", 1)[1] in args.models and p.with_suffix(".json").exists()
    )
    if not paths:
        parser.error(f"no frames with their JSON for {args.models} in {args.frames_dir}")
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: {len(paths)} frames")
    tables = []
    for path in paths:
        saved = read_frame(path)
        config = SimConfig.preset(
            args.preset,
            seed=saved.seed,
            n_customers=args.n_customers,
            n_merchants=args.n_merchants,
            n_smes=args.n_smes,
        )
        table = one_frame(saved, config)
        tables.append(table)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"), flush=True)
    every = pd.concat(tables)
    summary = every.groupby(["model", "group"], sort=False).agg(
        worlds=("seed", "nunique"),
        rows=("rows", "sum"),
        defaults=("defaults", "sum"),
        oracle_rank=("oracle_rank", "mean"),
        model_rank=("model_rank", "mean"),
        gap=("gap", "mean"),
        gap_without=("gap_without", "mean"),
    )
    print("\nover worlds (rows and defaults summed; ranks and gaps averaged):")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
