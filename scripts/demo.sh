#!/usr/bin/env bash
# The one-command demo (`make demo`): a project-local Airflow, the simulated ecosystem, the
# DAGs over the whole history then a few daily runs, then the scoring service and the
# dashboards in the background.
#
#   DEMO_SERVE=0        stop after the pipeline (for scripts and the benchmark)
#   DEMO_PRESET=demo    simulation preset (demo | large; tiny is the tests' and too small here)
#   DEMO_DAILY_RUNS=3   incremental daily runs after the history run
#   DEMO_SERVE_PORT=8000, DEMO_DASHBOARD_PORT=8501
#   YIDAI_HOME=var      all local state; AIRFLOW_HOME defaults to $YIDAI_HOME/airflow
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DEMO_SERVE=${DEMO_SERVE:-1}
DEMO_PRESET=${DEMO_PRESET:-demo}
DEMO_DAILY_RUNS=${DEMO_DAILY_RUNS:-3}
if [[ $DEMO_PRESET == tiny ]]; then
  echo "DEMO_PRESET=tiny is the tests' preset: too few loans mature with a default to train the" \
    "credit models (and the merchant limit refresh needs merchant_pd); use demo or large" >&2
  exit 2
fi
source scripts/demo-common.sh
stop_previous

started=$(date +%s)
step "Airflow: project-local home $AIRFLOW_HOME (SQLite metadata DB, pools)"
yidai pipeline setup

step "Simulate the ecosystem (preset $DEMO_PRESET) into $YIDAI_HOME/landing"
yidai simulate --preset "$DEMO_PRESET" --overwrite

step "Run the DAGs: the history in one run, then $DEMO_DAILY_RUNS daily runs (log: $DEMO_DIR/pipeline.log)"
yidai pipeline history --daily-runs "$DEMO_DAILY_RUNS" --log-file "$DEMO_DIR/pipeline.log"
elapsed=$(($(date +%s) - started))
echo "pipeline part of the demo: ${elapsed} s"
echo "$elapsed" >"$DEMO_DIR/pipeline_seconds"

step "The models train_weekly registered (oracle gap: AUC of the simulator's true PD minus the model's, same test rows)"
COLUMNS=${COLUMNS:-160} yidai models list --latest 1

if [[ $DEMO_SERVE == 0 ]]; then
  echo "DEMO_SERVE=0: stopping after the pipeline."
  exit 0
fi
exec bash scripts/demo-serve.sh

