#!/usr/bin/env bash
# `make test`: every test tier against one real Kafka broker and Redis server, started here
# on the test ports unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name running ones.
#
# Two lanes run side by side, each its own pytest process:
#   main        unit -> integration -> e2e   (CPU-bound; one after the other as before)
#   resilience  tests/resilience             (breaks its own broker / Redis and mostly waits
#                                             through outages, so it overlaps the main lane)
# They share the broker and Redis safely: every test has its own topic namespace and Redis
# prefix, and a test that stops a broker or Redis stops a private one.
# Each lane's output goes to .data/test-results/<lane>.log and is printed when it ends; the
# last line is the total over both lanes.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RESULTS="$REPO_ROOT/.data/test-results"
TEST_DATA="$REPO_ROOT/.data/test"
KAFKA_TEST_PORT="${TEST_KAFKA_PORT:-29092}"
REDIS_TEST_PORT="${TEST_REDIS_PORT:-26379}"
mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.xml "$RESULTS"/*.log

started=()
infra() {  # infra <script> <action> <port>
  KAFKA_PORT="$KAFKA_TEST_PORT" REDIS_PORT="$REDIS_TEST_PORT" SWITCHBOARD_DATA_DIR="$TEST_DATA" \
    KAFKA_LIBS="${KAFKA_LIBS:-$REPO_ROOT/.data/kafka-libs}" "$REPO_ROOT/deploy/local/$1" "$2"
}
cleanup() {
  for script in "${started[@]}"; do infra "$script" stop || true; done
}
trap cleanup EXIT

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  if ! port_open "$KAFKA_TEST_PORT"; then infra kafka.sh start || exit 1; started+=(kafka.sh); fi
  export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_TEST_PORT"
fi
if [ -z "${REDIS_URL:-}" ]; then
  if ! port_open "$REDIS_TEST_PORT"; then infra redis.sh start || exit 1; started+=(redis.sh); fi
  export REDIS_URL="redis://127.0.0.1:$REDIS_TEST_PORT/0"
fi

lane() {  # lane <name> <pytest args...>
  local name=$1; shift
  "$VENV/bin/pytest" "$@" -p no:cacheprovider --junitxml="$RESULTS/$name.xml" \
    >"$RESULTS/$name.log" 2>&1
}

say "running the main lane (unit, integration, e2e) and the resilience lane side by side"
lane main tests/unit tests/integration tests/e2e & main_pid=$!
lane resilience tests/resilience & resilience_pid=$!
wait "$main_pid"; main_rc=$?
wait "$resilience_pid"; resilience_rc=$?

for name in main resilience; do
  printf '\n===== lane: %s =====\n' "$name"
  cat "$RESULTS/$name.log"
done
"$VENV/bin/python" - "$RESULTS" <<'PY'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
for report in sorted(Path(sys.argv[1]).glob("*.xml")):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        total, skip = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed, failed, skipped = passed + total - skip - bad, failed + bad, skipped + skip
print(f"\ntotal: {passed} passed, {failed} failed, {skipped} skipped")
PY
[ "$main_rc" -eq 0 ] && [ "$resilience_rc" -eq 0 ]
