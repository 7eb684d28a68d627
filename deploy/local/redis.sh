#!/usr/bin/env bash
# A real Redis server (Debian's redis-server, installed when missing) on 127.0.0.1.
#   redis.sh start | stop | status
# Idempotent. Data and logs under .data/redis-<port>/ (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

install() {
  command -v redis-server >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "redis-server is missing: install it (sudo apt-get install redis-server)"
  say "installing redis-server from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
}

start() {
  if port_open "$REDIS_PORT"; then say "Redis already running on 127.0.0.1:$REDIS_PORT"; return 0; fi
  install
  mkdir -p "$REDIS_HOME"
  say "starting Redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_HOME/redis.log)"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$REDIS_HOME" \
    --pidfile "$REDIS_HOME/redis.pid" --logfile "$REDIS_HOME/redis.log" \
    --appendonly yes --appendfsync everysec --save "" --protected-mode yes
  wait_port "$REDIS_PORT" 15 || die "Redis did not start (see $REDIS_HOME/redis.log)"
  # An open port is not enough: while Redis loads its dump it answers LOADING to everything.
  for _ in $(seq 1 120); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.5
  done
  die "Redis did not finish loading (see $REDIS_HOME/redis.log)"
}

stop() {
  [ -f "$REDIS_HOME/redis.pid" ] && say "stopping Redis on port $REDIS_PORT"
  stop_pidfile "$REDIS_HOME/redis.pid" 10
}

status() {
  if port_open "$REDIS_PORT"; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; return 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
