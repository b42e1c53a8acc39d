#!/usr/bin/env bash
# `make run`: local Kafka, the otklik worker, the history store (SQLite), the operations console with a
# demo operator made for this run, and the traffic simulator; where Debian's prometheus and
# prometheus-alertmanager are installed, also Prometheus and Alertmanager with the shipped rules and the
# notifier, whose e-mails a local mail catcher keeps as .eml files under .run/local/mail. Until Ctrl-C.
# Ctrl-C (or SIGTERM) stops everything this script started, and only that.
set -uo pipefail
cd "$(dirname "$0")/.."
OTK=.venv/bin/otklik
RUN=.run/local
mkdir -p "$RUN"

PAGES=${OTKLIK_SIM_PAGES:-200}
RATE=${OTKLIK_SIM_RATE:-1}          # events per simulated second
SPEED=${OTKLIK_SIM_SPEED:-30}       # simulated seconds per real second
export OTKLIK_WEB_PORT=${OTKLIK_WEB_PORT:-6066}
export OTKLIK_KAFKA_BROKER=${OTKLIK_KAFKA_BROKER:-kafka://127.0.0.1:${OTKLIK_KAFKA_PORT:-9092}}
export OTKLIK_DATA_DIR=${OTKLIK_DATA_DIR:-$RUN/worker}
export OTKLIK_STORE_URL=${OTKLIK_STORE_URL:-sqlite:///$RUN/store/otklik.sqlite3}
export OTKLIK_CONSOLE_PORT=${OTKLIK_CONSOLE_PORT:-8090}
PROMETHEUS_PORT=${OTKLIK_PROMETHEUS_PORT:-9090}
ALERTMANAGER_PORT=${OTKLIK_ALERTMANAGER_PORT:-9093}
export OTKLIK_NOTIFIER_PORT=${OTKLIK_NOTIFIER_PORT:-9095}
MAIL_PORT=${OTKLIK_MAIL_PORT:-2525}
MAIL=$RUN/mail
bootstrap=${OTKLIK_KAFKA_BROKER#kafka://}

kafka_started=0
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping ..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "$kafka_started" = 1 ]; then $OTK kafka stop; fi
  echo "stopped."
}
trap cleanup INT TERM EXIT

if ! $OTK kafka status >/dev/null 2>&1; then
  $OTK kafka start || exit 1
  kafka_started=1
else
  echo "Kafka already running: using it"
fi

# The simulator describes its pages in a registry; real sources use a registry of their own.
if [ -z "${OTKLIK_REGISTRY:-}" ]; then
  export OTKLIK_REGISTRY=$RUN/simulated-registry.yaml
  $OTK simulate --pages "$PAGES" --duration 1 --out /dev/null --registry-out "$OTKLIK_REGISTRY" >/dev/null
fi

$OTK worker >"$RUN/worker.log" 2>&1 &
pids+=($!)
echo -n "waiting for the worker "
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$OTKLIK_WEB_PORT/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[0]}" 2>/dev/null; then echo; echo "the worker exited; the end of $RUN/worker.log:"; tail -30 "$RUN/worker.log"; exit 1; fi
  echo -n "."; sleep 1
done
echo

# A demo operator for this run, made before the store starts (either would create an empty store's
# tables; one at a time). The password is new each run and printed below, never logged.
demo_password=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(12))')
printf %s "$demo_password" | $OTK console add-user demo --role operator --password-stdin >/dev/null || exit 1

$OTK store >"$RUN/store.log" 2>&1 &
pids+=($!)

$OTK console >"$RUN/console.log" 2>&1 &
pids+=($!)

# Prometheus, Alertmanager (the shipped rules and routes, pointed at this run's processes), the notifier
# and the mail catcher, where Debian's packages are installed.
alerts=0
if command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
  alerts=1
  mkdir -p "$MAIL"
  .venv/bin/python -m otklik.streams.tools.mail_catcher --dir "$MAIL" --port "$MAIL_PORT" >"$RUN/mail.log" 2>&1 &
  pids+=($!)
  OTKLIK_WORKER_URL=http://127.0.0.1:$OTKLIK_WEB_PORT OTKLIK_NOTIFIER_DATA_DIR=$RUN/notifier \
    OTKLIK_SMTP_HOST=127.0.0.1 OTKLIK_SMTP_PORT=$MAIL_PORT OTKLIK_SMTP_FROM=otklik@localhost \
    $OTK notifier >"$RUN/notifier.log" 2>&1 &
  pids+=($!)
  .venv/bin/python - "$RUN" "$OTKLIK_WEB_PORT" "$OTKLIK_NOTIFIER_PORT" "$ALERTMANAGER_PORT" "$MAIL_PORT" <<'PY' || exit 1
import sys
from pathlib import Path

import yaml

run, worker, notifier, alertmanager, mail = sys.argv[1:]
deploy = Path("deploy").resolve()
prometheus = yaml.safe_load((deploy / "prometheus/prometheus.yml").read_text(encoding="utf-8"))
prometheus["rule_files"] = [str(deploy / "prometheus/rules/*.rules.yml")]
prometheus["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager}"]}]
targets = {"otklik-worker": worker, "otklik-notifier": notifier}  # no gateway in a local run
prometheus["scrape_configs"] = [job for job in prometheus["scrape_configs"] if job["job_name"] in targets]
for job in prometheus["scrape_configs"]:
    job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
routes = yaml.safe_load((deploy / "alertmanager/alertmanager.yml").read_text(encoding="utf-8"))
routes["global"]["smtp_smarthost"] = f"127.0.0.1:{mail}"
for receiver in routes["receivers"]:
    for hook in receiver.get("webhook_configs", []):
        hook["url"] = f"http://127.0.0.1:{notifier}/alertmanager"
Path(run, "prometheus.yml").write_text(yaml.safe_dump(prometheus, allow_unicode=True), encoding="utf-8")
Path(run, "alertmanager.yml").write_text(yaml.safe_dump(routes, allow_unicode=True), encoding="utf-8")
PY
  prometheus-alertmanager --config.file="$RUN/alertmanager.yml" --storage.path="$RUN/alertmanager-data" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= >"$RUN/alertmanager.log" 2>&1 &
  pids+=($!)
  prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/prometheus-data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$RUN/prometheus.log" 2>&1 &
  pids+=($!)
fi

$OTK simulate --pages "$PAGES" --rate "$RATE" --speed "$SPEED" --duration 0 --bootstrap "$bootstrap" \
  --topic "${OTKLIK_TOPIC_PREFIX:-}otklik.raw" \
  >"$RUN/simulator.log" 2>&1 &
pids+=($!)

cat <<MSG

otklik is running (Ctrl-C stops it):
  metrics      http://127.0.0.1:$OTKLIK_WEB_PORT/metrics     (otklik_raw_records_total grows as events flow)
  health       http://127.0.0.1:$OTKLIK_WEB_PORT/health
  Kafka        $bootstrap, topics otklik.raw → otklik.interactions → otklik.responses; otklik.dead-letters
  registry     $OTKLIK_REGISTRY ($PAGES simulated pages)
  store        ${OTKLIK_STORE_URL%%://*} store of every judged item; the month's rating:
               .venv/bin/otklik report rating --month $(date +%Y-%m) --by municipality --format csv
  console      http://127.0.0.1:$OTKLIK_CONSOLE_PORT/   sign in as demo, password $demo_password (operator, this run only)
  logs         $RUN/worker.log, $RUN/store.log, $RUN/console.log, $RUN/simulator.log
MSG
if [ "$alerts" = 1 ]; then
  cat <<MSG
  Prometheus   http://127.0.0.1:$PROMETHEUS_PORT/alerts  (the shipped rules)
  Alertmanager http://127.0.0.1:$ALERTMANAGER_PORT/   → the notifier on :$OTKLIK_NOTIFIER_PORT
  e-mails      $MAIL/*.eml  (a local catcher on :$MAIL_PORT keeps every message; nothing is delivered)
MSG
else
  echo "  (Prometheus and Alertmanager not started: Debian's prometheus and prometheus-alertmanager are not installed)"
fi
wait "${pids[0]}"
