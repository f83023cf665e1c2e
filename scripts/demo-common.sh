# Shared by scripts/demo.sh (the whole demo) and scripts/demo-serve.sh (its serving part):
# the environment, the `yidai` and `step` helpers, and stopping a previous demo's services.
# Sourced from the project root.
ROOT=$PWD
UV=${UV:-$(command -v uv || echo "$ROOT/.tools/bin/uv")}

export YIDAI_HOME=${YIDAI_HOME:-$ROOT/var}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$YIDAI_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
SERVE_PORT=${DEMO_SERVE_PORT:-8000}
DASHBOARD_PORT=${DEMO_DASHBOARD_PORT:-8501}
DEMO_DIR=$YIDAI_HOME/demo
mkdir -p "$DEMO_DIR"
yidai() { "$UV" run --frozen yidai "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Stop the services a previous demo started (by their recorded process ids only).
stop_previous() {
  local pidfile pid
  for pidfile in "$DEMO_DIR"/serve.pid "$DEMO_DIR"/dashboard.pid; do
    [[ -f $pidfile ]] || continue
    pid=$(<"$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      echo "stopping the previous demo's $(basename "$pidfile" .pid) (pid $pid)"
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  done
}
