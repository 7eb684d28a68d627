#!/usr/bin/env bash
# The whole system on one machine, no Docker: Kafka, Redis, ingress, brain, egress.
#   switchboard.sh up      start everything in the background (idempotent)
#   switchboard.sh down    stop everything
#   switchboard.sh run     up, follow the logs, and stop everything on Ctrl-C
#   switchboard.sh status  what is running
# Service logs: .data/run/<service>.log. Settings come from the environment (see README).
# Without TWILIO_ACCOUNT_SID, a fake Twilio REST API runs too (port FAKE_TWILIO_PORT, 8010)
# and SMS replies land there: try it with `switchboard simulate sms "Hi"`. Without
# VOIPBIN_ACCESS_KEY, a fake VoIPBin runs (port FAKE_VOIPBIN_PORT, 8020), set up to hand its
# calls to ingress: try a call with `switchboard simulate call --from +15551234567`. Without
# VAPI_API_KEY, a fake VAPI runs (port FAKE_VAPI_PORT, 8030), its assistant and phone number
# set up for ingress: try `switchboard simulate vapi --from +15551234567 "Hi"`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SERVICES=(ingress brain egress)
declare -A PORTS=([ingress]="${INGRESS_PORT:-8000}" [brain]="${BRAIN_PORT:-8001}" [egress]="${EGRESS_PORT:-8002}")

declare -A FAKE_PORTS=([twilio]="${FAKE_TWILIO_PORT:-8010}" [voipbin]="${FAKE_VOIPBIN_PORT:-8020}" [vapi]="${FAKE_VAPI_PORT:-8030}")
ALL_FAKES=(twilio voipbin vapi)
FAKES=()
if [ -z "${TWILIO_ACCOUNT_SID:-}" ]; then
  export TWILIO_API_BASE="http://127.0.0.1:${FAKE_PORTS[twilio]}"
  FAKES+=(twilio)
fi
if [ -z "${VOIPBIN_ACCESS_KEY:-}" ]; then
  export VOIPBIN_API_BASE="http://127.0.0.1:${FAKE_PORTS[voipbin]}/v1.0"
  FAKES+=(voipbin)
fi
if [ -z "${VAPI_API_KEY:-}" ]; then
  export VAPI_API_BASE="http://127.0.0.1:${FAKE_PORTS[vapi]}"
  FAKES+=(vapi)
fi
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:${PORTS[ingress]}}"
export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$KAFKA_PORT}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}"

start_service() {
  local name=$1 port=${PORTS[$1]}
  if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
    say "$name already running"; return 0
  fi
  port_open "$port" && die "port $port is taken: cannot start $name (set ${name^^}_PORT)"
  # One process per service here, so its name is a stable static-membership id: a worker
  # restarted by hand gets its partitions back at once (docs/operations.md).
  KAFKA_GROUP_INSTANCE_ID="${KAFKA_GROUP_INSTANCE_ID:-$name-$(hostname)-$port}" \
  LOG_FORMAT="${LOG_FORMAT:-json}" nohup "$VENV/bin/switchboard" "$name" --port "$port" \
    >>"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

start_fake() {
  local name=$1 port=${FAKE_PORTS[$1]} pidfile="$RUN_DIR/fake-$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  port_open "$port" && die "port $port is taken: cannot start the fake $name (set FAKE_${name^^}_PORT)"
  nohup "$VENV/bin/switchboard" fake "$name" --port "$port" >>"$RUN_DIR/fake-$name.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 60); do port_open "$port" && return 0; sleep 0.5; done
  tail -20 "$RUN_DIR/fake-$name.log" >&2
  die "the fake $name did not start"
}

wait_ready() {
  local name=$1 port=${PORTS[$1]}
  for _ in $(seq 120); do
    if "$VENV/bin/python" - "$port" <<'PY' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
PY
    kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null || { tail -20 "$RUN_DIR/$name.log" >&2; die "$name exited"; }
    sleep 0.5
  done
  tail -20 "$RUN_DIR/$name.log" >&2
  die "$name was not ready within 60 s"
}

up() {
  [ -x "$VENV/bin/switchboard" ] || die "no $VENV: run 'make install' first"
  mkdir -p "$RUN_DIR"
  if [[ "$KAFKA_BOOTSTRAP_SERVERS" == "127.0.0.1:$KAFKA_PORT" ]]; then "$REPO_ROOT/deploy/local/kafka.sh" start; fi
  if [[ "$REDIS_URL" == "redis://127.0.0.1:$REDIS_PORT/"* ]]; then "$REPO_ROOT/deploy/local/redis.sh" start; fi
  "$VENV/bin/switchboard" topics create >/dev/null
  for name in "${FAKES[@]}"; do start_fake "$name"; done
  for name in "${SERVICES[@]}"; do start_service "$name"; done
  for name in "${SERVICES[@]}"; do wait_ready "$name"; done
  local engine="offline engine (knowledge file: services/brain/knowledge.md)"
  [ -n "${OPENAI_API_KEY:-}" ] && engine="model ${OPENAI_MODEL:-gpt-4o-mini} at ${OPENAI_BASE_URL:-the OpenAI API}"
  local sms="Twilio account ${TWILIO_ACCOUNT_SID:-}"
  [ -z "${TWILIO_ACCOUNT_SID:-}" ] && sms="fake Twilio at $TWILIO_API_BASE; try: .venv/bin/switchboard simulate sms \"Hi\""
  local voice="VoIPBin at $VOIPBIN_API_BASE (run: .venv/bin/switchboard voipbin setup --public-url <your public URL>)"
  if [ -z "${VOIPBIN_ACCESS_KEY:-}" ]; then
    local sip
    sip=$("$VENV/bin/switchboard" voipbin setup --public-url "$PUBLIC_BASE_URL" 2>>"$RUN_DIR/fake-voipbin.log" | sed -n 's/.*\(sip:[^ ]*\).*/\1/p' | head -1 || true)
    voice="fake VoIPBin at $VOIPBIN_API_BASE, flow $sip; try: .venv/bin/switchboard simulate call --from +15551234567"
  fi
  local vapi="VAPI at ${VAPI_API_BASE:-https://api.vapi.ai} (run: .venv/bin/switchboard vapi setup --public-url <your public URL>)"
  if [ -z "${VAPI_API_KEY:-}" ]; then
    "$VENV/bin/switchboard" vapi setup --public-url "$PUBLIC_BASE_URL" --phone-number-id auto \
      >/dev/null 2>>"$RUN_DIR/fake-vapi.log" || say "the fake VAPI could not be set up (see $RUN_DIR/fake-vapi.log)"
    vapi="fake VAPI at $VAPI_API_BASE; try: .venv/bin/switchboard simulate vapi --from +15551234567 \"Hi\""
  fi
  cat >&2 <<MSG

  Switchboard is up.
    Web chat:   http://127.0.0.1:${PORTS[ingress]}/
    Health:     http://127.0.0.1:${PORTS[ingress]}/readyz  (brain :${PORTS[brain]}, egress :${PORTS[egress]})
    Answers:    $engine
    SMS:        $sms
    Voice:      $voice
    VAPI:       $vapi
    Logs:       $RUN_DIR/{ingress,brain,egress}.log

MSG
}

down() {
  for name in egress brain ingress; do
    [ -f "$RUN_DIR/$name.pid" ] && say "stopping $name"
    stop_pidfile "$RUN_DIR/$name.pid" 15
  done
  for name in "${ALL_FAKES[@]}"; do stop_pidfile "$RUN_DIR/fake-$name.pid" 5; done
  "$REPO_ROOT/deploy/local/redis.sh" stop
  "$REPO_ROOT/deploy/local/kafka.sh" stop
}

status() {
  for name in "${SERVICES[@]}"; do
    if [ -f "$RUN_DIR/$name.pid" ] && kill -0 "$(cat "$RUN_DIR/$name.pid")" 2>/dev/null; then
      echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"), port ${PORTS[$name]})"
    else
      echo "$name: stopped"
    fi
  done
  for name in "${ALL_FAKES[@]}"; do
    if [ -f "$RUN_DIR/fake-$name.pid" ] && kill -0 "$(cat "$RUN_DIR/fake-$name.pid")" 2>/dev/null; then
      echo "fake $name: running (port ${FAKE_PORTS[$name]})"
    fi
  done
  "$REPO_ROOT/deploy/local/kafka.sh" status || true
  "$REPO_ROOT/deploy/local/redis.sh" status || true
}

run() {
  local tail_pid=""
  trap 'echo; say "stopping"; [ -n "$tail_pid" ] && kill "$tail_pid" 2>/dev/null; down; exit 0' INT TERM
  up
  say "following logs; press Ctrl-C to stop everything"
  tail -n 0 -F "$RUN_DIR/ingress.log" "$RUN_DIR/brain.log" "$RUN_DIR/egress.log" &
  tail_pid=$!
  wait "$tail_pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  run) run ;;
  status) status ;;
  *) echo "usage: $0 up|down|run|status" >&2; exit 2 ;;
esac
