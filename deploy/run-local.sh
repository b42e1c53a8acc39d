#!/usr/bin/env bash
# `make run`: local Kafka, the otklik worker, the history store (SQLite) and the traffic simulator,
# until Ctrl-C.
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

$OTK store >"$RUN/store.log" 2>&1 &
pids+=($!)

$OTK simulate --pages "$PAGES" --rate "$RATE" --speed "$SPEED" --duration 0 --bootstrap "$bootstrap" \
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
  logs         $RUN/worker.log, $RUN/store.log, $RUN/simulator.log
MSG
wait "${pids[0]}"
