"""``simulate()``: run the whole ecosystem and write the landing zone and the truth tables."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simulator.business import merchant_month, skim_plan, sme_month
from simulator.calendar import Calendar
from simulator.config import SimConfig
from simulator.events import NOT_REPORTED, REF_POS, FraudLog
from simulator.landing import (
    ENTITY_WIDTH,
    EVENT_WIDTH,
    ID_FORMATS,
    Batch,
    LandingWriter,
    arrow_array,
    fixed_width_strings,
    format_ids,
    id_bytes,
    string_array,
    vocab_strings,
)
from simulator.loans import Applications, draw_applications, loan_batches
from simulator.people import customer_month
from simulator.world import DEFECTS, MISC, World, build_world, master_batches, rng_for
from yidai.core.contracts import CONTRACTS, FRAUD_TYPES, PRODUCTS
from yidai.core.errors import YidaiError

log = logging.getLogger(__name__)

TRUTH_FILES = ("applications.parquet", "entities.parquet", "fraud.parquet", "defects.parquet")
MALFORMED_SOURCE = "payments"
MALFORMED_NAME = "part-zz-resend.parquet"


@dataclass
class SimulationSummary:
    """What a simulation wrote: rows and files per source, truth rows, time taken."""

    landing: Path
    truth: Path
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    truth_rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0


def _split(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous index ranges covering ``0..n-1`` as evenly as possible."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(parts)]


class _Ticker(Protocol):
    def update(self, description: str) -> None: ...


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[_Ticker]:
    """A rich progress bar (or a silent stand-in) advanced once per simulated chunk-month."""
    if not enabled:

        class _Silent:
            def update(self, description: str) -> None:
                pass

        yield _Silent()
        return
    # heavy: rich
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ) as bar:
        task = bar.add_task("simulating", total=total)

        class _Bar:
            def update(self, description: str) -> None:
                bar.update(task, advance=1, description=description)

        yield _Bar()


def prepare_output(landing: Path, truth: Path, overwrite: bool) -> None:
    """Refuse a non-empty landing zone unless ``overwrite``; then clear what we write."""
    if landing.exists() and not landing.is_dir():
        raise YidaiError(f"landing path {landing} exists and is not a folder")
    if landing.exists() and any(landing.iterdir()):
        if not overwrite:
            raise YidaiError(
                f"landing folder {landing} is not empty; pass --overwrite to replace it"
            )
        for source in CONTRACTS:
            shutil.rmtree(landing / source, ignore_errors=True)
    for name in TRUTH_FILES:
        (truth / name).unlink(missing_ok=True)
    landing.mkdir(parents=True, exist_ok=True)
    truth.mkdir(parents=True, exist_ok=True)


def simulate(
    config: SimConfig,
    landing_dir: Path | str,
    truth_dir: Path | str,
    progress: bool = False,
    overwrite: bool = True,
) -> SimulationSummary:
    """Simulate the ecosystem of ``config``; write the landing zone and the truth tables.

    Same config, same bytes.  Memory stays bounded by ``config.chunk_size``: entities are
    simulated chunk by chunk, month by month, and each delivery day's file is written as soon
    as its month is complete.
    """
    config = config.validated()
    landing, truth = Path(landing_dir), Path(truth_dir)
    prepare_output(landing, truth, overwrite)
    started = time.perf_counter()
    cal = Calendar.build(config.start, config.months)
    world = build_world(config, cal)
    writer = LandingWriter(landing, cal, config.defect_rate)
    fraud_log = FraudLog()
    n_chunks = _n_chunks(config)
    try:
        with _progress(progress, n_chunks * cal.months + 2) as bar:
            summary = _run(config, world, writer, fraud_log, truth, bar)
    finally:
        writer.close()
    summary.rows = dict(sorted(writer.rows.items()))
    summary.files = dict(sorted(writer.files.items()))
    summary.seconds = time.perf_counter() - started
    log.info(
        "simulated %d rows in %d files in %.1f s",
        summary.total_rows,
        sum(summary.files.values()),
        summary.seconds,
    )
    return summary


def _run(
    config: SimConfig,
    world: World,
    writer: LandingWriter,
    fraud_log: FraudLog,
    truth: Path,
    bar: _Ticker,
) -> SimulationSummary:
    """Simulate chunk by chunk, month by month; then the loan book and the truth tables."""
    cal = world.calendar
    n_chunks = _n_chunks(config)
    for batch in master_batches(world):
        writer.add("master", batch, rng_for(config.seed, MISC), defects=False)
    writer.flush("master")
    for month, chunk, batches in month_batches(world, fraud_log):
        stream = f"k{chunk:04d}"
        defect_rng = rng_for(config.seed, DEFECTS, chunk, month)
        for batch in batches:
            writer.add(stream, batch, defect_rng)
        del batches
        writer.flush(stream, int(cal.month_starts[month + 1]))
        bar.update(f"{cal.date_of(int(cal.month_starts[month]))} chunk {chunk + 1}/{n_chunks}")
    for chunk in range(n_chunks):
        writer.flush(f"k{chunk:04d}")
    apps = draw_applications(world)
    defect_rng = rng_for(config.seed, DEFECTS, 1_000_000)
    for batch in loan_batches(world, apps):
        writer.add("loans", batch, defect_rng)
    writer.flush("loans")
    bar.update("loan book")
    writer.close()  # every file is on disk before one gets broken
    if config.defect_rate > 0:
        _write_malformed_file(writer, cal)
    summary = SimulationSummary(landing=writer.landing, truth=truth)
    summary.truth_rows = _write_truth(world, apps, fraud_log, writer, truth)
    bar.update("truth")
    return summary


def _n_chunks(config: SimConfig) -> int:
    return max(-(-config.n_customers // config.chunk_size), 1)


def month_batches(world: World, fraud_log: FraudLog) -> Iterator[tuple[int, int, list[Batch]]]:
    """Each month's and chunk's rows of customers, merchants and SMEs, in the order
    :func:`simulate` writes them (it fills ``world.agg``, which the loan book reads)."""
    config = world.config
    n_chunks = _n_chunks(config)
    customer_chunks = _split(config.n_customers, n_chunks)
    merchant_chunks = _split(config.n_merchants, n_chunks)
    sme_chunks = _split(config.n_smes, n_chunks)
    for month in range(world.calendar.months):
        skim = skim_plan(world, month)
        for chunk in range(n_chunks):
            batches = []
            lo, hi = customer_chunks[chunk]
            if hi > lo:
                batches += customer_month(world, chunk, lo, hi, month, skim, fraud_log)
            lo, hi = merchant_chunks[chunk]
            if hi > lo:
                batches += merchant_month(world, chunk, lo, hi, month, fraud_log)
            lo, hi = sme_chunks[chunk]
            if hi > lo:
                batches += sme_month(world, chunk, lo, hi, month)
            yield month, chunk, batches


def simulate_book(config: SimConfig) -> tuple[World, Applications]:
    """The world and its loan applications exactly as :func:`simulate` draws them, the
    events simulated in memory and dropped: for studies of the credit truth alone."""
    config = config.validated()
    world = build_world(config, Calendar.build(config.start, config.months))
    for _ in month_batches(world, FraudLog()):
        pass
    return world, draw_applications(world)


def _write_malformed_file(writer: LandingWriter, cal: Calendar) -> None:
    """One truncated Parquet file (a broken re-delivery) in a fixed place, recorded as a defect."""
    day = cal.n_days // 2
    folder = writer.landing / MALFORMED_SOURCE / f"dt={cal.date_of(day).isoformat()}"
    originals = sorted(folder.glob("part-*.parquet"))
    if not originals:
        return
    data = originals[0].read_bytes()
    target = folder / MALFORMED_NAME
    target.write_bytes(data[: max(len(data) // 2, 16)])
    writer.files[MALFORMED_SOURCE] += 1
    writer.defects.record_file(MALFORMED_SOURCE, str(target.relative_to(writer.landing)), day)


def _write_truth(
    world: World, apps: Applications, fraud_log: FraudLog, writer: LandingWriter, truth: Path
) -> dict[str, int]:
    """applications, entities, fraud and defects truth tables; returns their row counts."""
    cal = world.calendar
    ts_type = pa.timestamp("us")
    n_apps = len(apps.product)
    applicant = np.zeros((n_apps, len("C") + ENTITY_WIDTH), np.uint8)
    for code, column in enumerate(("customer_id", "merchant_id", "sme_id")):
        rows = np.flatnonzero(apps.product == code)
        applicant[rows] = id_bytes(apps.applicant[rows], column, *ID_FORMATS[column])
    tables: dict[str, pa.Table] = {
        "applications": pa.table(
            {
                "application_id": format_ids(np.arange(n_apps) + 1, *ID_FORMATS["application_id"]),
                "product": vocab_strings(PRODUCTS, apps.product),
                "applicant_id": fixed_width_strings(applicant),
                "ts": arrow_array(apps.ts, ts_type),
                "true_pd": arrow_array(apps.true_pd, pa.float64()),
                "path_pd": arrow_array(apps.path_pd, pa.float64()),
                "defaulted": arrow_array(apps.defaulted, pa.bool_()),
                "default_month": arrow_array(
                    apps.default_month, pa.int32(), apps.default_month < 0
                ),
                "decision": vocab_strings(("approved", "declined"), ~apps.approved),
                "account_id": fixed_width_strings(
                    id_bytes(
                        np.maximum(apps.account, 0) + 1, "account_id", *ID_FORMATS["account_id"]
                    ),
                    apps.account < 0,
                ),
                "latent_state": arrow_array(apps.state, pa.float64()),
            }
        )
    }
    entity_parts = []
    for kind, column, group in (
        ("customer", "customer_id", world.customers),
        ("merchant", "merchant_id", world.merchants),
        ("sme", "sme_id", world.smes),
    ):
        n = group.n
        entity_parts.append(
            pa.table(
                {
                    "entity_type": vocab_strings((kind,), np.zeros(n, np.int32)),
                    "entity_id": format_ids(np.arange(n), *ID_FORMATS[column]),
                    "latent_score": arrow_array(group.z, pa.float64()),
                    "shock_month": arrow_array(
                        group.shock_month, pa.int32(), group.shock_month < 0
                    ),
                }
            )
        )
    tables["entities"] = pa.concat_tables(entity_parts)
    fraud = fraud_log.merged()
    is_pos = fraud["ref_type"] == REF_POS
    ref_id = np.zeros((len(is_pos), len("P") + EVENT_WIDTH), np.uint8)
    for rows, column in ((is_pos, "txn_id"), (~is_pos, "payment_id")):
        ref_id[rows] = id_bytes(fraud["ref"][rows], column, *ID_FORMATS[column])
    order = np.lexsort((fraud["ref"], fraud["ts"]))
    not_reported = fraud["reported_at"] == NOT_REPORTED
    tables["fraud"] = pa.table(
        {
            "ref_type": vocab_strings(("pos", "payment"), (~is_pos)[order]),
            "ref_id": fixed_width_strings(ref_id[order]),
            "fraud_type": vocab_strings(FRAUD_TYPES, fraud["fraud_type"][order]),
            "ts": arrow_array(fraud["ts"][order], ts_type),
            "amount": arrow_array(np.round(fraud["amount"], 2)[order], pa.float64()),
            "reported_at": arrow_array(fraud["reported_at"][order], ts_type, not_reported[order]),
        }
    )
    if writer.defects.tables:
        defects = pa.concat_tables(writer.defects.tables)
    else:
        defects = pa.table(
            {
                "source": string_array([]),
                "key": string_array([]),
                "defect": string_array([]),
                "column": string_array([]),
                "delivered_day": arrow_array(np.zeros(0, np.int64), pa.int64()),
            }
        )
    days = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            np.frombuffer(c.buffers()[1], np.int64, count=len(c), offset=8 * c.offset)
            for c in defects["delivered_day"].chunks
        ]
    )  # (Arrow's to_numpy would import pandas: seconds of start-up)
    delivered = arrow_array(days + cal.epoch_day0, pa.date32())
    tables["defects"] = defects.drop_columns(["delivered_day"]).append_column(
        "delivered_dt", delivered
    )
    counts = {}
    for name, table in tables.items():
        pq.write_table(table, truth / f"{name}.parquet", compression="snappy")
        counts[name] = table.num_rows
    return counts
