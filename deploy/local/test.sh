#!/usr/bin/env bash
# `make test`: every test tier against one real Kafka broker and Redis server, started here
# on the test ports unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name running ones.
#
# Four lanes run side by side, each its own pytest process:
#   logic       unit, then integration        (in-process, ~3 min)
#   e2e         services as real processes    (~5 min; the longest lane)
#   resilience  tests/resilience              (breaks its own broker / Redis and mostly waits
#                                              through outages)
#   cluster     the integration tests of every Redis store (brain memory, locks, dedupe,
#               chat store, SMS ledger, voice and VAPI call registries, inbox, linking)
#               again, against a local Redis Cluster (3 masters, 1 replica each, on
#               TEST_REDIS_CLUSTER_PORT..+5, default 27300; ~2.5 min)
# A run used about half of the machine's two cores with the lanes one after the other, so
# side by side they cost little contention and save most of the waiting.
# They share the broker and Redis safely: every test has its own topic namespace and Redis
# prefix, and a test that stops a broker or Redis stops a private one.
# Each lane's output goes to .data/test-results/<lane>.log and is printed when all are done;
# the last line is the total over the lanes.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

RESULTS="$REPO_ROOT/.data/test-results"
TEST_DATA="$REPO_ROOT/.data/test"
KAFKA_TEST_PORT="${TEST_KAFKA_PORT:-29092}"
REDIS_TEST_PORT="${TEST_REDIS_PORT:-26379}"
REDIS_CLUSTER_TEST_PORT="${TEST_REDIS_CLUSTER_PORT:-27300}"
mkdir -p "$RESULTS"
rm -rf "$RESULTS"/*.xml "$RESULTS"/*.log "$RESULTS"/tmp-*

started=()
infra() {  # infra <script> <action> <port>
  KAFKA_PORT="$KAFKA_TEST_PORT" REDIS_PORT="$REDIS_TEST_PORT" SWITCHBOARD_DATA_DIR="$TEST_DATA" \
    KAFKA_LIBS="${KAFKA_LIBS:-$REPO_ROOT/.data/kafka-libs}" "$REPO_ROOT/deploy/local/$1" "$2"
}
cluster() {  # cluster <action>: the cluster lane's Redis Cluster
  REDIS_CLUSTER=1 REDIS_PORT="$REDIS_CLUSTER_TEST_PORT" SWITCHBOARD_DATA_DIR="$TEST_DATA" \
    "$REPO_ROOT/deploy/local/redis.sh" "$1"
}
cleanup() {
  for script in "${started[@]}"; do
    if [ "$script" = cluster ]; then cluster stop || true; else infra "$script" stop || true; fi
  done
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
if [ -z "${REDIS_CLUSTER_URL:-}" ]; then
  if ! port_open "$REDIS_CLUSTER_TEST_PORT"; then started+=(cluster); fi
  cluster start || exit 1  # idempotent; waits until the cluster is whole
  REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:$REDIS_CLUSTER_TEST_PORT,127.0.0.1:$((REDIS_CLUSTER_TEST_PORT + 1)),127.0.0.1:$((REDIS_CLUSTER_TEST_PORT + 2))"
fi
# The Redis-backed integration tests, for the cluster lane. test_inbox's proxy test is left
# out there: it cuts a TCP proxy in front of one node, and a cluster client learns the nodes'
# real addresses and goes round it (the failover test in tests/resilience covers a cluster
# losing a node). test_redis_migrate_keys is single-node by design.
CLUSTER_TESTS="tests/integration/test_locks.py tests/integration/test_memory.py
  tests/integration/test_burst_dedupe.py tests/integration/test_turns.py
  tests/integration/test_chat_store.py tests/integration/test_chat_heartbeat.py
  tests/integration/test_sms_delivery.py
  tests/integration/test_sms_ingress.py tests/integration/test_voice_egress.py
  tests/integration/test_voice_ingress.py tests/integration/test_voice_turns.py
  tests/integration/test_vapi_events.py tests/integration/test_vapi_llm.py
  tests/integration/test_vapi_outbound.py tests/integration/test_inbox.py
  tests/integration/test_identity_linking.py tests/integration/test_redis_replicas.py
  --deselect tests/integration/test_inbox.py::test_reader_survives_a_redis_outage_while_deleting_an_entry"

lane() {  # lane <name> <pytest args...>
  local name=$1; shift
  local env=()
  if [ "$name" = cluster ]; then env=(REDIS_URL="$REDIS_CLUSTER_URL" TEST_REDIS_CLUSTER=1); fi
  # Its own --basetemp: concurrent sessions sharing /tmp/pytest-of-<user> prune each
  # other's numbered directories, and the service logs of a failed test are kept here.
  env "${env[@]}" "$VENV/bin/pytest" "$@" -p no:cacheprovider --junitxml="$RESULTS/$name.xml" \
    --basetemp="$RESULTS/tmp-$name" >"$RESULTS/$name.log" 2>&1
}

declare -A LANES=([logic]="tests/unit tests/integration tests/conformance" [e2e]="tests/e2e" [resilience]="tests/resilience" [cluster]="$CLUSTER_TESTS")
declare -A PIDS=()
say "running the test lanes side by side: ${!LANES[*]} (output in $RESULTS)"
for name in "${!LANES[@]}"; do
  # shellcheck disable=SC2086  # the lane's paths are words on purpose
  lane "$name" ${LANES[$name]} &
  PIDS[$name]=$!
done
failed=()
for name in "${!LANES[@]}"; do
  wait "${PIDS[$name]}" || failed+=("$name")
done

for name in logic e2e resilience cluster; do
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
if [ "${#failed[@]}" -gt 0 ]; then say "failed lanes: ${failed[*]}"; exit 1; fi
