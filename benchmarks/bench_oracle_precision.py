"""Benchmark: how precisely must a model know each borrower's PD to come within 0.01 AUC of
the oracle?

    uv run python benchmarks/bench_oracle_precision.py [--seeds 47 48 49 50 51]
        [--preset demo] [--n-customers 40000] [--n-merchants 4000] [--n-smes 2500]
        [--errors 0 0.1 0.2 0.3 0.4 0.5 0.7] [--draws 5]

Issue 18 asks every credit model to rank within 0.01 AUC of the simulator's true PD.  The
oracle reads each borrower's latent state exactly; a model reads it through the traces the
state leaves (tickets, hours, refunds, turnover...), so its estimate of the PD's logit carries
an error.  This measures the gap that an error of a given size costs, on the oracle itself:
the AUC of the truth's label against ``logit(true_pd) + e`` minus its AUC against
``true_pd``, ``e`` normal with standard deviation ``--errors``, drawn

- *per borrower* (one error for all of a borrower's decisions: a misjudged shop stays
  misjudged across its line reviews), and
- *per decision* (independent errors, which partly average out over a line's reviews).

Each world is simulated in memory at the given size, events included (the bank's historic
decisions read the borrowers' turnover), with no landing files, ingest or features; the rows
are the decisions that ``bench_oracle_gap.py`` scores: every application of a product whose
label window has closed by the end of the simulated period (on a line for the merchants and
SMEs), all of the period's windows, not only the two-month test window, so the curve is
precise.  Read a model's gap against the curve through its own error: the residual standard
deviation of ``logit(true_pd)`` around the model's score (``bench_oracle_gap.py`` frames).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from models.metrics import auc
from simulator import SimConfig
from simulator.core import simulate_book
from simulator.loans import LINE_PRODUCTS, PRODUCTS, Applications, label_cutoff
from simulator.world import World
from yidai.core.settings import BAD_DAYS_PAST_DUE

PRODUCT_NAMES = ("personal", "merchant", "SME")


def closed_windows(world: World, apps: Applications) -> np.ndarray:
    """Whether each application's label window has closed by the end of the period."""
    cal = world.calendar
    cutoff = label_cutoff(cal, apps.day, world.config.performance_months)
    window_end = cutoff + BAD_DAYS_PAST_DUE  # the decision plus the window's months
    return np.asarray(window_end <= cal.month_end_days()[-1])


def scored_rows(apps: Applications, closed: np.ndarray, product: int) -> np.ndarray:
    """Indices of ``product``'s decisions with a closed label window (on a line, for lines)."""
    rows = (apps.product == product) & closed
    if product in LINE_PRODUCTS:
        rows &= apps.account >= 0
    return np.flatnonzero(rows)


def gap_curve(
    y: np.ndarray,
    true_pd: np.ndarray,
    borrower: np.ndarray,
    errors: list[float],
    draws: int,
    rng: np.random.Generator,
) -> dict[str, list[float]]:
    """The oracle's AUC loss per error size, the error drawn per borrower and per decision
    (mean over ``draws``)."""
    logit = np.log(true_pd / (1 - true_pd))
    base = auc(y, true_pd)
    ids, index = np.unique(borrower, return_inverse=True)
    out: dict[str, list[float]] = {"per borrower": [], "per decision": []}
    for sd in errors:
        per_borrower = [
            base - auc(y, logit + rng.normal(0, sd, len(ids))[index]) for _ in range(draws)
        ]
        per_decision = [base - auc(y, logit + rng.normal(0, sd, len(y))) for _ in range(draws)]
        out["per borrower"].append(float(np.mean(per_borrower)))
        out["per decision"].append(float(np.mean(per_decision)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[47, 48, 49, 50, 51])
    parser.add_argument("--preset", default="demo", help="simulation preset (default demo)")
    parser.add_argument("--n-customers", type=int, default=40_000)
    parser.add_argument("--n-merchants", type=int, default=4_000)
    parser.add_argument("--n-smes", type=int, default=2_500)
    parser.add_argument(
        "--errors", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7],
        help="standard deviations of the error on the PD's logit",
    )  # fmt: skip
    parser.add_argument("--draws", type=int, default=5, help="error draws per size")
    args = parser.parse_args(argv)
    curves: dict[tuple[int, str], list[list[float]]] = {}
    for seed in args.seeds:
        started = time.perf_counter()
        config = SimConfig.preset(
            args.preset, seed=seed, n_customers=args.n_customers,
            n_merchants=args.n_merchants, n_smes=args.n_smes,
        )  # fmt: skip
        world, apps = simulate_book(config)
        closed = closed_windows(world, apps)
        rng = np.random.default_rng(seed)
        for product in PRODUCTS:
            rows = scored_rows(apps, closed, product)
            y, pd_ = apps.defaulted[rows], apps.true_pd[rows]
            curve = gap_curve(y, pd_, apps.applicant[rows], args.errors, args.draws, rng)
            name = PRODUCT_NAMES[product]
            print(
                f"seed {seed} {name}: {len(rows)} decisions, {int(y.sum())} defaults, "
                f"{len(np.unique(apps.applicant[rows[y]]))} defaulting borrowers, "
                f"oracle AUC {auc(y, pd_):.4f}"
            )
            for kind, gaps in curve.items():
                curves.setdefault((product, kind), []).append(gaps)
                pairs = zip(args.errors, gaps, strict=True)
                print(f"  {kind:>12}: " + "  ".join(f"{sd:.1f}: {g:+.4f}" for sd, g in pairs))
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    print(f"\nmean over seeds {args.seeds}: the oracle's AUC loss per error sd on its logit")
    print("| product | error drawn | " + " | ".join(f"sd {sd:.1f}" for sd in args.errors) + " |")
    print("|---|---|" + "---|" * len(args.errors))
    for (product, kind), per_seed in sorted(curves.items()):
        mean = np.mean(per_seed, axis=0)
        cells = " | ".join(f"{g:+.4f}" for g in mean)
        print(f"| {PRODUCT_NAMES[product]} | {kind} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
