#!/usr/bin/env bash
# Runs a command with the local Kafka up: starts it when it is not running, and stops it
# afterwards only if this script started it. The command's exit status is kept.
set -uo pipefail
cd "$(dirname "$0")/.."
OTK=.venv/bin/otklik
started=0
if ! $OTK kafka status >/dev/null 2>&1; then
  if ! $OTK kafka start; then
    echo "could not start Kafka; tests that need it will fail" >&2
  else
    started=1
  fi
fi
"$@"
rc=$?
if [ "$started" = 1 ]; then
  $OTK kafka stop
fi
exit $rc
