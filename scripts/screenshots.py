"""Regenerate the dashboards' screenshots (docs/screenshots/*.png) from a demo home.

    .venv/bin/python scripts/screenshots.py [--home var] [--out docs/screenshots]
    make screenshots                       (the same, on YIDAI_HOME or var)

Needs a home a finished ``make demo`` left (warehouse, models, published tables).  What the
pages need that such a home may lack is made first, with the project's own steps: the scored
applications and payment events (``publish_scored_applications``, as ``monitoring_daily``
does) when absent, and a few audited decisions (``scripts/demo-serve.sh``: the scoring
service and the example checkouts, stopped afterwards) when the audit store is empty.  Then
``yidai dashboard`` is started on the home, every page is opened by its URL in headless
Chromium at 1600 px, one filter changed, and a full-page PNG saved (the same code as the
browser test, ``tests/support/dashboard_shots.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _settings(home: Path):  # type: ignore[no-untyped-def]
    os.environ["YIDAI_HOME"] = str(home)
    # deferred: YIDAI_HOME is set before the project's settings load
    from yidai.core.settings import get_settings, reset_settings_cache

    reset_settings_cache()
    return get_settings()


def ensure_scored(home: Path) -> None:
    """Publish the scored applications and payment events if the home has none."""
    # deferred: YIDAI_HOME is set before the project's settings load
    from yidai.jobs.analytics.dashboard_tables import table_path
    from yidai.jobs.analytics.scored import PAYMENT_EVENTS, SCORED_AREA, publish_scored_applications

    serving = _settings(home).serving
    if table_path(serving / SCORED_AREA, PAYMENT_EVENTS) is not None:
        return
    print("publishing the scored applications and payment events (a few minutes)...", flush=True)
    print("published", publish_scored_applications(), flush=True)


def _has_decisions(home: Path) -> bool:
    # deferred: YIDAI_HOME is set before the project's settings load
    from yidai.jobs.analytics.decisions import find_decisions

    try:
        return not find_decisions(_settings(home).audit_url, limit=1).empty
    except Exception:  # no audit database yet
        return False


def ensure_decisions(home: Path) -> None:
    """Record a few decisions through the real scoring service if the audit store is empty."""
    if _has_decisions(home):
        return
    demo = home / "demo"
    for name in ("serve.pid", "dashboard.pid"):
        if (demo / name).exists():
            sys.exit(
                f"{demo / name} exists: a demo's services may be running on this home; stop them "
                "(see scripts/demo-serve.sh) or send a few decisions, then re-run"
            )
    # deferred: YIDAI_HOME is set before the project's settings load
    from tests.support.dashboard_shots import free_port

    print("no audited decisions: running scripts/demo-serve.sh for a few checkouts...", flush=True)
    env = {
        **os.environ,
        "YIDAI_HOME": str(home),
        "DEMO_SERVE_PORT": str(free_port()),
        "DEMO_DASHBOARD_PORT": str(free_port()),
    }
    try:
        subprocess.run(["bash", "scripts/demo-serve.sh"], cwd=REPO, env=env, check=True)
    finally:
        for name in ("serve.pid", "dashboard.pid"):  # the groups demo-serve.sh started
            pidfile = demo / name
            if pidfile.exists():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.killpg(int(pidfile.read_text().strip()), signal.SIGTERM)
                pidfile.unlink()


def capture(home: Path, out: Path) -> None:
    """Every page's screenshot under ``out``; exits non-zero on an error box."""
    # deferred: YIDAI_HOME is set before the project's settings load
    from tests.support.browser import headless_chromium
    from tests.support.dashboard_shots import WIDTH, capture_every_page, running_dashboard

    tmp = Path(tempfile.mkdtemp(prefix="yidai-shots-"))
    with running_dashboard(home, tmp / "dashboard.log") as url:
        driver = headless_chromium(tmp / "profile", f"{WIDTH},1200")
        try:
            problems = capture_every_page(driver, url, out)
        finally:
            driver.quit()
    for png in sorted(out.glob("*.png")):
        print(f"{png}: {png.stat().st_size / 1024:.0f} KB")
    if problems:
        sys.exit("problems on the pages:\n" + "\n".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("YIDAI_HOME", "var")))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument(
        "--no-prepare", action="store_true", help="do not publish or record anything first"
    )
    args = parser.parse_args()
    home = args.home.resolve()
    if not (home / "warehouse").exists():
        sys.exit(f"{home} is not a demo home (no warehouse): run `make demo` first")
    if not args.no_prepare:
        ensure_scored(home)
        ensure_decisions(home)
    capture(home, args.out.resolve())


if __name__ == "__main__":
    main()
