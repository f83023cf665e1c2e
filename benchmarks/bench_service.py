"""Benchmark of the scoring service on loopback (bounded in requests and time).

A personal credit decision end to end: HTTP, API key, feature lookup in the published
snapshot, champion + shadow challenger LightGBM models, policy, and the durable audit write
(SQLite WAL, synchronous=NORMAL).  Measures, in one run:

1. one worker, sequential requests: p50 / p99 latency;
2. ``mlflow models serve`` (one worker) of the same champion model answering the same rows
   (features only, no policy, no audit), running beside it: sequential and 4 clients;
3. one worker and mlflow at N concurrent clients, alternating in ``--rounds`` rounds (so a
   change in the machine's load hits both): throughput and p99, and their ratio;
4. two workers, N concurrent clients: throughput and p99.

Every phase also prints the CPU the server processes used (user + sys, from ``/proc``) per
request, the cores used by the server, by ``wrk`` and by the whole machine, and the load
average: on a shared 2-core machine, CPU per request is the figure least affected by
what else runs, and it shows what scale-out can give (see ``docs/benchmarks.md``).

    uv run python benchmarks/bench_service.py --help
    uv run python benchmarks/bench_service.py --seconds 10   # wrk (apt-get install wrk)
    uv run python benchmarks/bench_service.py --generator python --concurrent 4000
    uv run python benchmarks/bench_service.py --audit postgres --skip-mlflow --skip-workers

``--audit postgres`` puts the audit store on a throwaway local PostgreSQL cluster (fsync off,
like the tests: a lower bound of a production server's commit cost) or on ``--audit-url``.

Builds a sandbox (synthetic snapshots + small registered models, see
``tests.support.sandbox``) under ``--home`` the first time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url_port: int, path: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with code {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on port {url_port} not ready after {timeout:.0f}s")


def _wait_workers_ready(port: int, workers: int, timeout: float, proc: Any) -> None:
    """Until ``workers`` distinct processes (pids in /readyz) can decide personal credit
    (the benchmarked product; the sandbox publishes no merchant limits, so /readyz as a
    whole stays 503)."""
    ready: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(ready) < workers:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"only {len(ready)} of {workers} workers ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            report = json.loads(response.read())
            conn.close()
            if report["products"]["personal"]["ready"]:
                ready.add(int(report["pid"]))
        except OSError:
            pass
        time.sleep(0.05)


class CpuMeter:
    """CPU seconds (user + sys) of a server's process tree, of reaped children (``wrk``)
    and of the whole machine (``/proc/stat``) between :meth:`start` and :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def _tree(self) -> float:
        import psutil

        root = psutil.Process(self.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    @staticmethod
    def _machine() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    def start(self) -> None:
        import resource

        self._t0 = time.perf_counter()
        self._server0 = self._tree()
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        self._children0 = ru.ru_utime + ru.ru_stime
        self._machine0 = self._machine()

    def stop(self, requests: float) -> dict[str, float]:
        import resource

        wall = time.perf_counter() - self._t0
        server = self._tree() - self._server0
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = ru.ru_utime + ru.ru_stime - self._children0
        busy1, total1 = self._machine()
        busy0, total0 = self._machine0
        cores = os.cpu_count() or 1
        return {
            "server_cpu_ms": 1000 * server / max(requests, 1),
            "server_cores": server / wall,
            "client_cores": client / wall,
            "machine_cores": cores * (busy1 - busy0) / max(total1 - total0, 1),
            "load": os.getloadavg()[0],
        }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


Request = tuple[str, str, bytes, dict[str, str]]  # method, path, body, headers


def _run_requests(port: int, requests: list[Request], deadline: float) -> list[float]:
    """Send requests one after another on one keep-alive connection; latencies in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out: list[float] = []
    for method, path, body, headers in requests:
        if time.monotonic() > deadline:
            break
        start = time.perf_counter()
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        out.append(time.perf_counter() - start)
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status} from {path}: {payload[:300]!r}")
    conn.close()
    return out


def _client_process(
    port: int, requests: list[Request], threads: int, deadline: float, queue: Any
) -> None:
    chunks = [requests[i::threads] for i in range(threads)]
    results: list[list[float]] = [[] for _ in chunks]

    def run(i: int) -> None:
        try:
            results[i] = _run_requests(port, chunks[i], deadline)
        except BaseException as exc:  # report, do not lose the thread silently
            print(f"client thread failed: {exc}", file=sys.stderr, flush=True)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    queue.put([x for r in results for x in r])


def load(port: int, requests: list[Request], clients: int, time_limit: float) -> dict[str, float]:
    """``clients`` concurrent keep-alive clients (2 processes x threads); throughput and p99."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs_n = 2 if clients >= 2 else 1
    deadline = time.monotonic() + time_limit
    parts = [requests[i::procs_n] for i in range(procs_n)]
    start = time.perf_counter()
    procs = [
        ctx.Process(target=_client_process, args=(port, part, clients // procs_n, deadline, queue))
        for part in parts
    ]
    for p in procs:
        p.start()
    latencies = [x for _ in procs for x in queue.get(timeout=time_limit + 60)]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return _summary(latencies, elapsed)


WRK_SCRIPT = """
local bodies = {BODIES}
local headers = {HEADERS}
local path = "PATH"
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", path, headers, bodies[(i % #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKRESULT %d %d %d %d %f %f\\n", summary.requests,
    summary.duration, e.status + e.connect + e.read + e.write + e.timeout, 0,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_load(port: int, requests: list[Request], clients: int, seconds: float) -> dict[str, float]:
    """``clients`` keep-alive connections from ``wrk`` (C, one thread: it leaves the cores to
    the server) for ``seconds``; throughput, p50 and p99 as wrk measures them."""
    import tempfile

    bodies = list(dict.fromkeys(body for _, _, body, _ in requests))[:2000]
    headers = requests[0][3]
    lua = (
        WRK_SCRIPT.replace("{BODIES}", "{" + ",".join(f"[=[{b.decode()}]=]" for b in bodies) + "}")
        .replace("{HEADERS}", "{" + ",".join(f'["{k}"]="{v}"' for k, v in headers.items()) + "}")
        .replace("PATH", requests[0][1])
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
             "-s", f.name, f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True, timeout=seconds + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(f.name)
    line = next(x for x in out.splitlines() if x.startswith("WRKRESULT"))
    n, duration_us, errors, _, p50_us, p99_us = (float(v) for v in line.split()[1:])
    if errors:
        raise SystemExit(f"wrk saw {errors:.0f} failed or non-2xx responses:\n{out}")
    return {
        "requests": n,
        "throughput_rps": n / (duration_us / 1e6),
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
    }


def _summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    arr = np.asarray(latencies) * 1000
    return {
        "requests": float(len(arr)),
        "throughput_rps": len(arr) / elapsed,
        "p50_ms": float(np.percentile(arr, 50)),
        "p99_ms": float(np.percentile(arr, 99)),
    }


def sequential(port: int, requests: list[Request], time_limit: float) -> dict[str, float]:
    start = time.perf_counter()
    lat = _run_requests(port, requests, time.monotonic() + time_limit)
    return _summary(lat, time.perf_counter() - start)


AUDIT_URL: str | None = None  # --audit postgres: the service's audit store (else SQLite)


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["YIDAI_HOME"] = str(home)
    if AUDIT_URL is not None:
        env["YIDAI_AUDIT_DB_URL"] = AUDIT_URL
    # `mlflow models serve` execs `uvicorn` from PATH: the venv's, also without `uv run`
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["YIDAI_MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    env["MLFLOW_TRACKING_URI"] = env["YIDAI_MLFLOW_TRACKING_URI"]
    # the bench tells the workers apart by the pid in the detailed /readyz (ops details)
    env["YIDAI_OPS_ENDPOINTS_REQUIRE_KEY"] = "false"
    return env


def start_yidai(home: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "yidai.cli", "serve", "--port", str(port), "--workers",
         str(workers)],
        env=_env(home), cwd=ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(port, "/healthz", 900, proc)
        _wait_workers_ready(port, workers, 900, proc)
    except BaseException:
        _stop(proc)
        raise
    return proc, port


def start_mlflow(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", "models:/personal_pd@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=_env(home), cwd=home, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(port, "/ping", 600, proc)
    except BaseException:
        _stop(proc)
        raise
    return proc, port


def prepare(home: Path, rebuild: bool) -> tuple[list[str], list[str], np.ndarray]:
    """Sandbox under ``home``; returns customer ids, feature names and their model rows."""
    # heavy: the sandbox loads MLflow and LightGBM (not needed for --help)
    from features import load_snapshot
    from scoring_service.demo import entity_ids
    from scoring_service.vectors import RequestVectorizer
    from tests.support.sandbox import MODELS, build_sandbox
    from yidai.core.errors import YidaiError
    from yidai.core.settings import Settings

    settings = Settings(home=home, mlflow_tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")
    try:
        load_snapshot(settings.serving, MODELS["personal"][1])
    except YidaiError:  # nothing published yet, or published from older feature definitions
        rebuild = True
    if rebuild:
        shutil.rmtree(home, ignore_errors=True)
        print(f"building the sandbox under {home} ...", flush=True)
        build_sandbox(settings, n_pos=40_000)
    (home / "audit").mkdir(parents=True, exist_ok=True)
    for stale in (home / "audit").glob("decisions.db*"):
        stale.unlink()
    customers = entity_ids(settings, ["personal"])["personal"]
    snapshot = load_snapshot(settings.serving, MODELS["personal"][1])
    vec = RequestVectorizer(snapshot)
    rows = np.array(
        [vec.vector(snapshot.get(c), {"requested_amount": 1500.0}, c) for c in customers]
    )
    return customers, list(snapshot.columns), rows


def api_key(home: Path) -> str:
    from scoring_service.security import create_key

    key, _ = create_key(home / "service" / "api_keys.json", "bench", ["personal-credit"])
    return key


def credit_requests(key: str, customers: list[str], n: int) -> list[Request]:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    return [
        (
            "POST",
            "/v1/decisions/personal-credit",
            json.dumps(
                {"customer_id": customers[i % len(customers)], "requested_amount": 1500.0}
            ).encode(),
            headers,
        )
        for i in range(n)
    ]


def mlflow_requests(columns: list[str], rows: np.ndarray, n: int) -> list[Request]:
    headers = {"Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {
                "dataframe_split": {
                    "columns": columns,
                    "data": [[None if np.isnan(v) else v for v in r]],
                }
            }
        ).encode()
        for r in rows
    ]
    return [("POST", "/invocations", bodies[i % len(bodies)], headers) for i in range(n)]


def _fmt(name: str, r: dict[str, float]) -> str:
    line = (
        f"{name:<44} {int(r['requests']):>6} req  {r['throughput_rps']:>8.0f} req/s  "
        f"p50 {r['p50_ms']:>6.2f} ms  p99 {r['p99_ms']:>7.2f} ms"
    )
    if "server_cpu_ms" in r:
        line += (
            f"  | server CPU {r['server_cpu_ms']:.3f} ms/req, {r['server_cores']:.2f} cores;"
            f" client {r['client_cores']:.2f}; machine busy {r['machine_cores']:.2f} cores;"
            f" load {r['load']:.1f}"
        )
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=ROOT / "var" / "bench-service",
        help="state folder (sandbox, registry, audit store)",
    )
    parser.add_argument("--sequential", type=int, default=2000, help="sequential requests")
    parser.add_argument("--concurrent", type=int, default=4000, help="requests under load")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument(
        "--mlflow-requests",
        type=int,
        default=600,
        help="requests to mlflow models serve (per phase)",
    )
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per phase")
    parser.add_argument(
        "--generator",
        choices=["wrk", "python"],
        default="wrk" if shutil.which("wrk") else "python",
        help="load generator: wrk (C, `apt-get install wrk`; default when installed) or "
        "python (http.client threads in 2 processes)",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="seconds per wrk phase (wrk is time-bound)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating Yidai / mlflow rounds at --clients (each --seconds / 2)",
    )
    parser.add_argument(
        "--audit",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="audit store of the service: the SQLite file, or PostgreSQL (--audit-url, else "
        "a throwaway local cluster)",
    )
    parser.add_argument("--audit-url", help="an existing PostgreSQL database for --audit postgres")
    parser.add_argument("--skip-mlflow", action="store_true", help="no mlflow models serve")
    parser.add_argument("--skip-workers", action="store_true", help="no 2-worker phase")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the sandbox")
    parser.add_argument(
        "--online-store",
        choices=["embedded", "redis"],
        help="benchmark the online feature store instead (with --payers): publish a synthetic "
        "payment snapshot, memory and lookups before/after, the service on it",
    )
    parser.add_argument("--payers", type=int, default=138_000, help="synthetic payers")
    parser.add_argument("--counterparts", type=int, default=30, help="payees per payer")
    parser.add_argument("--redis-url", help="an existing Redis for --online-store redis")
    parser.add_argument(
        "--reuse-snapshot",
        action="store_true",
        help="embedded: serve the payment snapshot an earlier run published (same --payers)",
    )
    parser.add_argument(
        "--before-ref",
        default="851da4b",
        help="git ref of the code before the online store (its service runs on the same "
        "snapshot); empty: skip",
    )
    parser.add_argument(
        "--legacy-max-pairs",
        type=float,
        default=12e6,
        help="measure the old in-memory load only up to this many pairs",
    )
    parser.add_argument(
        "--online-workers",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 4],
        help="worker counts of the service phases (comma-separated)",
    )
    args = parser.parse_args(argv)
    home = args.home.resolve()
    if args.online_store:
        online_run(args, home)
        return
    if args.audit == "postgres":
        from tests.support.pg_local import PostgresCluster

        global AUDIT_URL
        cluster = None
        if args.audit_url:
            AUDIT_URL = args.audit_url
        else:
            cluster = PostgresCluster().start()
            AUDIT_URL = cluster.new_database()
        print(f"audit store: PostgreSQL{' (throwaway cluster, fsync off)' if cluster else ''}")
        try:
            run(args, home)
        finally:
            if cluster is not None:
                cluster.stop()
        return
    print("audit store: SQLite (WAL, synchronous=NORMAL)")
    run(args, home)


def run(args: argparse.Namespace, home: Path) -> None:
    """Every phase, printed as it ends, then the results and the summary."""
    customers, columns, rows = prepare(home, args.rebuild)
    key = api_key(home)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}"
    )
    results: list[str] = []
    phases: list[tuple[str, Callable[[], None]]] = []
    YIDAI_1 = f"yidai 1 worker, {args.clients} clients"
    YIDAI_2 = f"yidai 2 workers, {args.clients} clients"
    MLFLOW = f"mlflow models serve, {args.clients} clients"
    MLFLOW_SEQ = "mlflow models serve (model only), sequential"
    MLFLOW_4 = f"mlflow models serve, {min(4, args.clients)} clients"
    rounds = range(1, args.rounds + 1)
    print(f"load generator: {args.generator}")

    figures: dict[str, dict[str, float]] = {}

    def measured(name: str, pid: int, run: Callable[[], dict[str, float]]) -> None:
        meter = CpuMeter(pid)
        meter.start()
        r = run()
        r.update(meter.stop(r["requests"]))
        figures[name] = r
        results.append(_fmt(name, r))

    def run_sequential(port: int, requests: list[Request]) -> dict[str, float]:
        if args.generator == "wrk":
            return wrk_load(port, requests, 1, args.seconds)
        return sequential(port, requests, args.time_limit)

    def run_load(port: int, requests: list[Request], clients: int | None) -> dict[str, float]:
        """``clients`` (default ``--clients``) for ``--seconds``; None: one of the rounds."""
        seconds = args.seconds if clients is not None else args.seconds / 2
        if args.generator == "wrk":
            return wrk_load(port, requests, clients or args.clients, seconds)
        return load(port, requests, clients or args.clients, args.time_limit)

    def side_by_side() -> None:
        """Yidai (1 worker) and mlflow both up; their 16-client phases alternate in rounds,
        so a change in the machine's load hits both alike."""
        proc, port = start_yidai(home, 1)
        ml: tuple[subprocess.Popen[bytes], int] | None = None
        try:
            if not args.skip_mlflow:
                ml = start_mlflow(home)
            sequential(port, credit_requests(key, customers, 200), args.time_limit)  # warm-up
            seq = credit_requests(key, customers, args.sequential)
            measured("yidai 1 worker, sequential", proc.pid, lambda: run_sequential(port, seq))
            many = credit_requests(key, customers, args.concurrent)
            if ml is not None:
                ml_proc, ml_port = ml
                sequential(ml_port, mlflow_requests(columns, rows, 30), args.time_limit)
                ml_seq = mlflow_requests(columns, rows, args.mlflow_requests)
                measured(MLFLOW_SEQ, ml_proc.pid, lambda: run_sequential(ml_port, ml_seq))
                ml_many = mlflow_requests(columns, rows, args.mlflow_requests)
                measured(
                    MLFLOW_4, ml_proc.pid, lambda: run_load(ml_port, ml_many, min(4, args.clients))
                )
            for i in range(1, args.rounds + 1):
                measured(f"{YIDAI_1}, round {i}", proc.pid, lambda: run_load(port, many, None))
                if ml is not None:
                    name = f"{MLFLOW}, round {i}"
                    measured(name, ml_proc.pid, lambda: run_load(ml_port, ml_many, None))
            figures[YIDAI_1] = combine([figures[f"{YIDAI_1}, round {i}"] for i in rounds])
            results.append(_fmt(f"{YIDAI_1} (rounds)", figures[YIDAI_1]))
            if ml is not None:
                figures[MLFLOW] = combine([figures[f"{MLFLOW}, round {i}"] for i in rounds])
                results.append(_fmt(f"{MLFLOW} (rounds)", figures[MLFLOW]))
        finally:
            _stop(proc)
            if ml is not None:
                _stop(ml[0])

    def yidai_two() -> None:
        proc, port = start_yidai(home, 2)
        try:
            sequential(port, credit_requests(key, customers, 200), args.time_limit)
            many = credit_requests(key, customers, args.concurrent)
            measured(YIDAI_2, proc.pid, lambda: run_load(port, many, args.clients))
        finally:
            _stop(proc)

    phases.append(("yidai one worker and mlflow models serve, side by side", side_by_side))
    if not args.skip_workers:
        phases.append(("yidai, two workers", yidai_two))
    for name, phase in phases:
        print(f"phase: {name} ... (load average {os.getloadavg()[0]:.1f})", flush=True)
        done = len(results)
        phase()
        print("\n".join(results[done:]), flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores: above 2 means queueing)")
    print("\n".join(["", "results:", *results]))
    print("\n".join(["", "summary:", *summary(figures, YIDAI_1, MLFLOW, YIDAI_2, args.rounds)]))


def combine(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Rounds of one server: requests and CPU summed, latencies and loads as the median."""
    n = sum(r["requests"] for r in rounds)
    out = {
        "requests": n,
        "throughput_rps": n / sum(r["requests"] / r["throughput_rps"] for r in rounds),
        "server_cpu_ms": sum(r["server_cpu_ms"] * r["requests"] for r in rounds) / n,
    }
    for key in ("p50_ms", "p99_ms", "server_cores", "client_cores", "machine_cores", "load"):
        out[key] = float(np.median([r[key] for r in rounds]))
    return out


def summary(
    figures: dict[str, dict[str, float]], one: str, mlflow: str, two: str, rounds: int
) -> list[str]:
    """Yidai vs mlflow (throughput, p99, CPU per request) and the 2-worker scale-out."""
    out: list[str] = []
    if one in figures and mlflow in figures:
        y, m = figures[one], figures[mlflow]
        ratios = [
            figures[f"{one}, round {i}"]["throughput_rps"]
            / figures[f"{mlflow}, round {i}"]["throughput_rps"]
            for i in range(1, rounds + 1)
        ]
        out.append(
            f"yidai / mlflow throughput at the same clients: "
            f"{y['throughput_rps'] / m['throughput_rps']:.1f}x (target >= 10x; rounds "
            f"{', '.join(f'{r:.1f}x' for r in ratios)}); "
            f"p99 {y['p99_ms']:.1f} ms vs {m['p99_ms']:.1f} ms (median of rounds)"
        )
        best_name, best = max(
            ((k, v) for k, v in figures.items() if k.startswith("mlflow") and "round" not in k),
            key=lambda kv: kv[1]["throughput_rps"],
        )
        ratio = y["throughput_rps"] / best["throughput_rps"]
        out.append(
            f"yidai at {one.split(', ')[1]} vs mlflow at its best concurrency ({best_name}: "
            f"{best['throughput_rps']:.0f} req/s): {ratio:.1f}x"
        )
        out.append(
            f"server CPU per request: yidai {y['server_cpu_ms']:.3f} ms, mlflow "
            f"{m['server_cpu_ms']:.3f} ms ({m['server_cpu_ms'] / y['server_cpu_ms']:.1f}x; "
            "less sensitive than throughput to other load on the machine)"
        )
    if one in figures:
        y = figures[one]
        out.append(
            f"one worker: {y['server_cores']:.2f} cores busy, i.e. "
            f"{y['throughput_rps'] / max(y['server_cores'], 1e-9):.0f} req/s per core of server CPU"
        )
    if one in figures and two in figures:
        y, t = figures[one], figures[two]
        out.append(
            f"two workers: {t['throughput_rps'] / y['throughput_rps']:.2f}x the throughput of "
            f"one, using {t['server_cores']:.2f} server cores (one worker: "
            f"{y['server_cores']:.2f}); CPU per request {t['server_cpu_ms']:.3f} vs "
            f"{y['server_cpu_ms']:.3f} ms; wrk used {t['client_cores']:.2f} cores and the "
            f"machine was busy {t['machine_cores']:.2f} of {os.cpu_count()} cores"
        )
    return out


# ---------------------------------------------------------------------------- online store
# ``--online-store embedded|redis`` (with ``--payers N``): the online feature store's figures,
# the code before it (``--before-ref``, the serving code as it was, run from a git export
# with the same venv) and after it in one run, on one synthetic payment snapshot.

PROBE = r"""
import json, os, sys, time
import numpy as np
mode, serving, fs_name, store, payers = sys.argv[1:6]
rng = np.random.default_rng(5)
t0 = time.perf_counter()
if mode == "legacy":  # what the service loaded before the online store: dicts and sets
    import pandas as pd
    folder = json.loads(open(os.path.join(serving, "features", fs_name, "CURRENT")).read())
    folder = os.path.join(serving, "features", fs_name, folder["snapshot_id"])
    index, pairs = {}, {}
    for name in os.listdir(folder):
        if name.endswith(".parquet") and name != "pairs.parquet":
            df = pd.read_parquet(os.path.join(folder, name))
            ids = df["entity_id"].astype(str).tolist()
            matrix = df.drop(columns="entity_id").to_numpy(np.float64, copy=True)
            index[name[:-8]] = (dict(zip(ids, range(len(ids)))), matrix)
    p = pd.read_parquet(os.path.join(folder, "pairs.parquet"))
    for f in ("counterpart_id", "device_id", "channel"):
        sub = p[p["field"] == f]
        pairs[f] = set((sub["payer_id"].astype(str) + "\x1f" + sub["value"].astype(str)).tolist())
    del p
    opened = time.perf_counter() - t0
    def one(i):
        payer = f"P{i:08d}"
        j = index["payer"][0].get(payer)
        (None if j is None else index["payer"][1][j])
        return f"{payer}\x1fC{i % 1000:08d}" in pairs["counterpart_id"]
else:
    from features import load_snapshot
    t0 = time.perf_counter()  # the imports are the same as before; the open is what changed
    snap = load_snapshot(serving, fs_name, store)
    opened = time.perf_counter() - t0
    def one(i):
        payer = f"P{i:08d}"
        return snap.reader.lookup(
            [("payer", payer), ("counterpart", f"C{i % 1000:08d}"), ("merchant", None)],
            [("counterpart_id", payer, f"C{i % 1000:08d}"), ("device_id", payer, f"D{i}_0"),
             ("channel", payer, "app")])
    def vector(i):
        payer = f"P{i:08d}"
        return snap.vector({"payer_id": payer, "event_type": "payment",
                            "ts": "2026-07-01T10:00:00", "amount": 120.0,
                            "counterpart_id": f"C{i % 1000:08d}", "merchant_id": None,
                            "mcc": None, "entry_mode": None, "channel": "app",
                            "device_id": f"D{i}_0", "payment_type": "transfer", "recent": []})
lat = []
for i in rng.integers(0, int(payers), 3000):
    t = time.perf_counter(); one(int(i)); lat.append(time.perf_counter() - t)
vec = []
if mode != "legacy":
    for i in rng.integers(0, int(payers), 2000):
        t = time.perf_counter(); vector(int(i)); vec.append(time.perf_counter() - t)
vec = np.array(vec[500:] or [0.0]) * 1e6
import psutil
m = psutil.Process().memory_full_info()
lat = np.array(lat[500:]) * 1e6
print(json.dumps({"open_s": opened, "rss_mb": m.rss / 2**20, "pss_mb": m.pss / 2**20,
                  "uss_mb": m.uss / 2**20, "p50_us": float(np.percentile(lat, 50)),
                  "p99_us": float(np.percentile(lat, 99)),
                  "vector_p50_us": float(np.percentile(vec, 50)),
                  "vector_p99_us": float(np.percentile(vec, 99))}))
"""


def synthetic_payment_snapshot(
    serving: Path, payers: int, counterparts: int, store: Any
) -> dict[str, float]:
    """Publish a synthetic ``payment_fraud_v1`` snapshot: ``payers`` payers with
    ``counterparts`` payees, 2 devices and 2 channels each (random profile values); returns
    publish seconds, pairs, folder bytes and the store's memory growth (Redis)."""
    import duckdb

    from features import FRAUD_FEATURE_SET, get_feature_set
    from features.serving import publish_tables
    from tests.support.sandbox import AS_OF

    fs = get_feature_set(FRAUD_FEATURE_SET)
    pool = max(1000, payers * 2)  # distinct payees
    sizes = {"payer": payers, "counterpart": pool, "merchant": max(100, payers // 50)}
    prefix = {"payer": "P", "counterpart": "C", "merchant": "M"}

    def write(tmp: Path) -> None:
        con = duckdb.connect()
        try:
            for entity in fs.profile_entities:
                cols = ", ".join(f'random() AS "{c}"' for c in fs.profile_columns(entity))
                con.execute(
                    f"COPY (SELECT '{prefix[entity]}' || lpad(CAST(i AS VARCHAR), 8, '0') "
                    f"AS entity_id, {cols} FROM range({sizes[entity]}) t(i)) "
                    f"TO '{tmp / f'{entity}.parquet'}' (FORMAT parquet)"
                )
            con.execute(
                f"""COPY (
                SELECT 'P' || lpad(CAST(p AS VARCHAR), 8, '0') AS payer_id,
                       'counterpart_id' AS field,
                       'C' || lpad(CAST((p * 7919 + k * 104729) % {pool} AS VARCHAR), 8, '0')
                       AS value
                FROM range({payers}) a(p), range({counterparts}) b(k)
                UNION ALL
                SELECT 'P' || lpad(CAST(p AS VARCHAR), 8, '0'), 'device_id',
                       'D' || CAST(p AS VARCHAR) || '_' || CAST(k AS VARCHAR)
                FROM range({payers}) a(p), range(2) b(k)
                UNION ALL
                SELECT 'P' || lpad(CAST(p AS VARCHAR), 8, '0'), 'channel', c
                FROM range({payers}) a(p), (VALUES ('app'), ('web')) v(c)
                ) TO '{tmp / "pairs.parquet"}' (FORMAT parquet)"""
            )
        finally:
            con.close()

    before = _redis_used(store)
    start = time.perf_counter()
    folder = publish_tables(serving, fs, AS_OF, write, keep=2, store=store)
    seconds = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    arrays = sum(p.stat().st_size for p in (folder / "online").glob("*"))
    pairs = payers * (counterparts + 4)
    return {"publish_s": seconds, "pairs": pairs, "disk_bytes": disk, "arrays_bytes": arrays,
            "redis_bytes": _redis_used(store) - before}  # fmt: skip


def _redis_used(store: Any) -> float:
    if getattr(store, "kind", "") != "redis":
        return 0.0
    return float(store.client.info("memory")["used_memory"])


def probe(mode: str, serving: Path, store_url: str, payers: int) -> dict[str, float]:
    """Open the payment snapshot in a fresh process (``legacy``: as the service did before
    the online store) and look 3,000 payers up; its memory and lookup latency."""
    from features import FRAUD_FEATURE_SET

    env = dict(os.environ, YIDAI_ENV_FILE="")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, str(serving), FRAUD_FEATURE_SET, store_url,
         str(payers)],
        capture_output=True, text=True, check=True, env=env, cwd=ROOT,
    ).stdout  # fmt: skip
    return dict(json.loads(out.strip().splitlines()[-1]))


def export_before(ref: str) -> Path:
    """The code at ``ref`` (git archive) in a temporary folder, to run with this venv."""
    target = Path(f"/tmp/yidai-before-{ref[:12]}")
    if not (target / "scoring_service").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def start_service(
    home: Path, workers: int, extra: dict[str, str], code: Path | None
) -> tuple[subprocess.Popen[bytes], int, float]:
    """``yidai serve`` (the code at ``code`` if given); returns it, its port and the seconds
    until every worker can decide payments and personal credit."""
    port = _free_port()
    env = _env(home)
    env.update(extra)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "yidai.cli", "serve", "--port", str(port), "--workers",
         str(workers)],
        env=env, cwd=code or ROOT, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(port, "/healthz", 900, proc)
        ready: set[int] = set()
        while len(ready) < workers:
            if proc.poll() is not None or time.monotonic() - start > 900:
                raise SystemExit("service did not get ready")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                report = json.loads(conn.getresponse().read())
                conn.close()
                if all(report["products"][p]["ready"] for p in ("personal", "payment")):
                    ready.add(int(report["pid"]))
            except OSError:
                pass
            time.sleep(0.05)
    except BaseException:
        _stop(proc)
        raise
    return proc, port, time.monotonic() - start


def worker_memory(pid: int) -> list[dict[str, float]]:
    """RSS, PSS and USS (private) of each worker of the server ``pid`` (MB)."""
    import psutil

    root = psutil.Process(pid)
    children = root.children(recursive=True)  # uvicorn's spawned workers, if more than one
    procs = [p for p in children if "spawn_main" in " ".join(p.cmdline())] or [root]
    out = []
    for p in procs:
        m = p.memory_full_info()
        out.append({"rss_mb": m.rss / 2**20, "pss_mb": m.pss / 2**20, "uss_mb": m.uss / 2**20})
    return out


def payment_requests(key: str, payers: int, n: int) -> list[Request]:
    headers = {"X-API-Key": key, "Content-Type": "application/json"}
    rng = np.random.default_rng(11)
    out: list[Request] = []
    for j, i in enumerate(rng.integers(0, payers, n)):
        body = {"payer_id": f"P{int(i):08d}", "amount": 50.0 + j % 400, "channel": "app",
                "device_id": f"D{int(i)}_0", "counterpart_id": f"C{int(i) % 1000:08d}",
                "ts": f"2026-07-01T{8 + j % 12:02d}:{j % 60:02d}:{j % 59:02d}"}  # fmt: skip
        out.append(("POST", "/v1/payments/risk", json.dumps(body).encode(), headers))
    return out


def online_run(args: argparse.Namespace, home: Path) -> None:
    """The online store's figures, before and after in one run."""
    from features.online import open_store
    from scoring_service.security import create_key
    from tests.support.sandbox import MODELS

    customers, _, _ = prepare(home, args.rebuild)
    key, _ = create_key(home / "service" / "api_keys.json", "bench",
                        ["personal-credit", "payment-risk"])  # fmt: skip
    serving = home / "serving"
    server = None
    url = "embedded"
    if args.online_store == "redis":
        if args.redis_url:
            url = args.redis_url
        else:
            from tests.support.redis_local import RedisServer

            server = RedisServer().start()
            url = server.url(0)
    try:
        store = open_store(url, serving)
        if store.kind == "redis":  # the credit sets too: the service reads all from Redis
            from features import publish_snapshot

            publish_snapshot(home / "sandbox" / "warehouse.duckdb", serving,
                             __import__("tests.support.sandbox").support.sandbox.AS_OF,
                             [MODELS["personal"][1]], store=store)  # fmt: skip
        print(f"online store: {store.kind}; publishing {args.payers:,} payers x "
              f"{args.counterparts} payees ...", flush=True)  # fmt: skip
        if args.reuse_snapshot:  # the live payment snapshot as published by an earlier run
            from features import FRAUD_FEATURE_SET, current_pointer

            live = current_pointer(serving, FRAUD_FEATURE_SET) or {}
            if live.get("rows", {}).get("payer") != args.payers:
                raise SystemExit(f"the live payment snapshot does not have {args.payers} payers")
            pairs = float(args.payers * (args.counterparts + 4))
            arrays = float(live.get("embedded_bytes", 0))
            pub = {"publish_s": float("nan"), "pairs": pairs, "disk_bytes": 0.0,
                   "arrays_bytes": arrays, "redis_bytes": 0.0}  # fmt: skip
        else:
            pub = synthetic_payment_snapshot(serving, args.payers, args.counterparts, store)
        print(
            f"published {pub['pairs']:,.0f} pairs in {pub['publish_s']:.1f} s; folder "
            f"{pub['disk_bytes'] / 2**20:.0f} MB (embedded arrays "
            f"{pub['arrays_bytes'] / 2**20:.0f} MB)"
            + (f"; Redis +{pub['redis_bytes'] / 2**20:.0f} MB = "
               f"{pub['redis_bytes'] / args.payers:.0f} bytes per payer, "
               f"{pub['redis_bytes'] / pub['pairs']:.0f} per pair (profiles included)"
               if store.kind == "redis" else ""),
            flush=True,
        )  # fmt: skip
        rows = []
        if pub["pairs"] <= args.legacy_max_pairs:
            rows.append(("before: dicts and sets", probe("legacy", serving, url, args.payers)))
        rows.append((f"after: {store.kind} store", probe("store", serving, url, args.payers)))
        for name, r in rows:
            print(
                f"{name:<28} open {r['open_s']:6.2f} s  RSS {r['rss_mb']:7.0f} MB  "
                f"PSS {r['pss_mb']:7.0f} MB  private {r['uss_mb']:7.0f} MB  "
                f"lookup p50 {r['p50_us']:6.1f} us  p99 {r['p99_us']:7.1f} us"
                + (
                    f"  full vector p50 {r['vector_p50_us']:.0f} us p99 {r['vector_p99_us']:.0f} us"
                    if r["vector_p50_us"]
                    else ""
                ),
                flush=True,
            )
        extra = {"YIDAI_ONLINE_STORE": url}
        codes: list[tuple[str, Path | None]] = [("after", None)]
        if args.before_ref and store.kind == "embedded":
            codes.insert(0, (f"before ({args.before_ref})", export_before(args.before_ref)))
        for label, code in codes:
            for workers in args.online_workers if code is None else [1]:
                proc, port, ready_s = start_service(home, workers, extra, code)
                try:
                    credit = credit_requests(key, customers, args.sequential + 200)
                    pays = payment_requests(key, args.payers, args.sequential + 200)
                    sequential(port, credit[:200], args.time_limit)
                    sequential(port, pays[:200], args.time_limit)
                    figures = []
                    if workers == 1:
                        c = sequential(port, credit[200:], args.time_limit)
                        p = sequential(port, pays[200:], args.time_limit)
                        figures.append(f"personal p50 {c['p50_ms']:.2f} / p99 {c['p99_ms']:.2f} ms")
                        figures.append(f"payment p50 {p['p50_ms']:.2f} / p99 {p['p99_ms']:.2f} ms")
                    meter = CpuMeter(proc.pid)
                    # personal credit at N clients is the request of docs/benchmarks.md row #5
                    for product, many in (
                        ("payment", payment_requests(key, args.payers, args.concurrent)),
                        ("personal", credit_requests(key, customers, args.concurrent)),
                    ):
                        meter.start()
                        t = load(port, many, args.clients, args.time_limit)
                        t.update(meter.stop(t["requests"]))
                        figures.append(
                            f"{product} {args.clients} clients {t['throughput_rps']:.0f} req/s "
                            f"(p99 {t['p99_ms']:.1f} ms; server CPU {t['server_cpu_ms']:.2f} "
                            f"ms/req, load {t['load']:.1f})"
                        )
                    mem = worker_memory(proc.pid)
                    figures.append(
                        "per worker RSS "
                        + "/".join(f"{m['rss_mb']:.0f}" for m in mem)
                        + " MB, private "
                        + "/".join(f"{m['uss_mb']:.0f}" for m in mem)
                        + f" MB (sum {sum(m['uss_mb'] for m in mem):.0f} MB)"
                    )
                finally:
                    _stop(proc)
                print(f"{label}, {workers} worker(s), ready in {ready_s:.1f} s: "
                      + "; ".join(figures), flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
