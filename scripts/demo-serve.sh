#!/usr/bin/env bash
# The serving part of the demo (run by scripts/demo.sh after the pipeline, or alone on a
# YIDAI_HOME the pipeline has filled): an API key for the example integration, the scoring
# service and the dashboards in the background, a few mall checkouts through the example.
#
#   DEMO_SERVE_PORT=8000, DEMO_DASHBOARD_PORT=8501, YIDAI_HOME=var
#   DEMO_READY_SECONDS=120  how long the service may take to load (then its report is shown)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/demo-common.sh
stop_previous

ONLINE_STORE=${YIDAI_ONLINE_STORE:-embedded}
if [[ $ONLINE_STORE != embedded ]]; then
  step "Online feature store: $(sed -E 's#//[^@/]*@#//#' <<<"$ONLINE_STORE") (the live snapshots must be in it)"
  # The pipeline published into this store if YIDAI_ONLINE_STORE was set for it; a home
  # published to the embedded store only (or a fresh Redis) gets the live day published here.
  AS_OF=$("$UV" run --frozen python - <<'PY'
from features import current_pointer
from features.engine import resolve_feature_sets
from features.online import open_store
from yidai.core.settings import get_settings

settings = get_settings()
store = open_store()
sets = resolve_feature_sets(None)
missing = [fs.name for fs in sets if store.current(fs.name) is None]
live = current_pointer(settings.serving, sets[0].name)
if missing and live is not None:
    print(live["as_of"])
PY
)
  if [[ -n $AS_OF ]]; then
    echo "publishing the snapshots of $AS_OF into the online store"
    yidai features publish --as-of "$AS_OF"
  else
    echo "the online store holds every live snapshot"
  fi
fi

step "API key for the example integration (mall checkout)"
KEY_FILE=$DEMO_DIR/mall_checkout.key
(umask 077 && yidai keys create --module mall_checkout --scopes personal-credit,payment-risk >"$KEY_FILE")
# and one for the operators' readiness and metrics endpoints
(umask 077 && yidai keys create --module demo_ops --scopes ops >"$DEMO_DIR/ops.key")
# The example checkouts, "customer device seller channel" (scoring_service.demo.demo_checkouts).
"$UV" run --frozen python -c '
from scoring_service.demo import demo_checkouts
from yidai.core.settings import get_settings
for row in demo_checkouts(get_settings()):
    print(*row)
' >"$DEMO_DIR/checkouts.txt"
CUSTOMER=$(head -1 "$DEMO_DIR/checkouts.txt" | cut -d' ' -f1)

step "Start the scoring service and the dashboards in the background"
setsid "$UV" run --frozen yidai serve --port "$SERVE_PORT" >"$DEMO_DIR/serve.log" 2>&1 &
echo $! >"$DEMO_DIR/serve.pid"
setsid "$UV" run --frozen yidai dashboard --port "$DASHBOARD_PORT" >"$DEMO_DIR/dashboard.log" 2>&1 &
echo $! >"$DEMO_DIR/dashboard.pid"
trap 'echo "stopping the services after the failure" >&2; stop_previous' ERR

wait_for() {  # URL, name, log file
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 1
  done
  echo "$2 did not answer on $1 within 60 s; see $3" >&2
  return 1
}
wait_for "http://127.0.0.1:$SERVE_PORT/healthz" "the scoring service" "$DEMO_DIR/serve.log"
wait_for "http://127.0.0.1:$DASHBOARD_PORT/" "the dashboards" "$DEMO_DIR/dashboard.log"
# Readiness per product, once the service has tried to load everything (however long that
# takes on this machine, up to DEMO_READY_SECONDS): a product whose model could not be
# trained stays not ready and answers 503 with the reason.
echo "scoring service readiness:"
"$UV" run --frozen python - "http://127.0.0.1:$SERVE_PORT" "$DEMO_DIR/ops.key" <<'PY'
import os, sys
from scoring_service.client import YidaiClient, readiness_lines
client = YidaiClient(sys.argv[1], open(sys.argv[2]).read().strip())
_, report = client.wait_until_loaded(timeout=float(os.environ.get("DEMO_READY_SECONDS", "120")))
print("\n".join(readiness_lines(report)))
PY
# Memory of each service process (RSS, and the private part: the embedded feature store's
# snapshot pages live in the page cache, shared, never in a worker); shown again at the end.
"$UV" run --frozen python - "$(cat "$DEMO_DIR/serve.pid")" "$ONLINE_STORE" <<'PY' | tee "$DEMO_DIR/memory.txt"
import os, re, sys
root, store = int(sys.argv[1]), sys.argv[2].split("@")[-1]
parents = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        parents[int(pid)] = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except OSError:
        pass
tree, todo = [], [root]
while todo:
    pid = todo.pop()
    tree.append(pid)
    todo += [c for c, p in parents.items() if p == pid]
lines = []
for pid in tree:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        rollup = open(f"/proc/{pid}/smaps_rollup").read()
    except OSError:
        continue
    if "python" not in cmd or "yidai" not in cmd and "spawn_main" not in cmd:
        continue  # uv itself, the resource tracker
    kb = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+) kB", rollup, re.M)}
    private = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    what = "worker" if "spawn_main" in cmd else "yidai serve"
    lines.append(f"  {what} pid {pid}: {kb.get('Rss', 0) / 1024:.0f} MB resident, "
                 f"{private / 1024:.0f} MB private")
print(f"scoring service memory (online feature store: {store}):")
print("\n".join(lines) or "  (no service process found)")
PY

step "A few mall checkouts through the example integration (examples/mall_checkout.py): everyday checkouts, then one on a new phone at a new seller"
i=0
while read -r customer device seller channel; do
  i=$((i + 1))
  YIDAI_API_KEY=$(<"$KEY_FILE") "$UV" run --frozen python examples/mall_checkout.py \
    --url "http://127.0.0.1:$SERVE_PORT" --customer "$customer" --amount $((i * 150 + 199)) \
    --device "$device" --seller "$seller" --channel "$channel" </dev/null ||
    echo "  (checkout for one customer failed; see $DEMO_DIR/serve.log)"
done <"$DEMO_DIR/checkouts.txt"

cat <<EOF

$(cat "$DEMO_DIR/memory.txt")

Yidai is running (state under $YIDAI_HOME):
  scoring service  http://127.0.0.1:$SERVE_PORT   (OpenAPI: http://127.0.0.1:$SERVE_PORT/docs)
  dashboards       http://127.0.0.1:$DASHBOARD_PORT

Call the service with the example integration's key (in $KEY_FILE):
  curl -s -X POST http://127.0.0.1:$SERVE_PORT/v1/decisions/personal-credit \\
       -H "X-API-Key: \$(cat $KEY_FILE)" -H 'Content-Type: application/json' \\
       -d '{"customer_id": "$CUSTOMER", "requested_amount": 2599}'
  curl -s -X POST http://127.0.0.1:$SERVE_PORT/v1/payments/risk \\
       -H "X-API-Key: \$(cat $KEY_FILE)" -H 'Content-Type: application/json' \\
       -d '{"payer_id": "$CUSTOMER", "amount": 88.0, "channel": "app"}'
  or from Python: scoring_service.client.YidaiClient("http://127.0.0.1:$SERVE_PORT", key)

The Airflow UI on the same runs (same AIRFLOW_HOME, SQLite metadata DB):
  AIRFLOW_HOME=$AIRFLOW_HOME AIRFLOW__CORE__DAGS_FOLDER=$AIRFLOW__CORE__DAGS_FOLDER \\
    AIRFLOW__CORE__LOAD_EXAMPLES=False $UV run airflow standalone
  then open http://localhost:8080 (the admin password is printed, and stored in
  $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated).

Stop the demo services:
  kill -- -\$(cat $DEMO_DIR/serve.pid) -\$(cat $DEMO_DIR/dashboard.pid)
EOF
trap - ERR
