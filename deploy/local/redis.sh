#!/usr/bin/env bash
# A real Redis server (Debian's redis-server, installed when missing) on 127.0.0.1.
#   redis.sh start | stop | status
# Idempotent. Data and logs under .data/redis-<port>/ (git-ignored).
#
# REDIS_CLUSTER=1: a Redis Cluster instead, 3 masters with one replica each, on ports
# REDIS_PORT..REDIS_PORT+5 (data under .data/redis-cluster-<port>/<node port>/). Clients use
#   REDIS_URL=redis+cluster://127.0.0.1:<REDIS_PORT>,127.0.0.1:<REDIS_PORT+1>,...
# A node that was stopped rejoins from its nodes.conf; `stop` keeps the data, so `start`
# brings the same cluster back (delete the data directory for a new one).
# REDIS_CLUSTER_NODE_TIMEOUT_MS (default 5000): how long a silent master is waited for
# before its replica takes over. Each node's cluster bus listens on its port + 50 (not Redis's
# default + 10000, which would leave the range of ports a test may use).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REDIS_CLUSTER="${REDIS_CLUSTER:-0}"
CLUSTER_HOME="$DATA_DIR/redis-cluster-$REDIS_PORT"
CLUSTER_NODE_TIMEOUT_MS="${REDIS_CLUSTER_NODE_TIMEOUT_MS:-5000}"
CLUSTER_BUS_OFFSET=50
cluster_ports() { seq "$REDIS_PORT" $((REDIS_PORT + 5)); }

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

# wait_pong <port> <log>: an open port is not enough, a loading Redis answers LOADING.
wait_pong() {
  wait_port "$1" 15 || die "Redis did not start on port $1 (see $2)"
  for _ in $(seq 1 120); do
    [ "$(redis-cli -p "$1" ping 2>/dev/null)" = "PONG" ] && return 0
    sleep 0.5
  done
  die "Redis on port $1 did not finish loading (see $2)"
}

cluster_ok() {  # every node answers and sees the cluster whole, every master has a replica
  local port
  for port in $(cluster_ports); do
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
  [ "$(redis-cli -p "$REDIS_PORT" cluster nodes 2>/dev/null | grep -c ' slave ')" -ge 3 ]
}

start_cluster() {
  install
  local port home fresh=1
  for port in $(cluster_ports); do
    home="$CLUSTER_HOME/$port"
    [ -s "$home/nodes.conf" ] && fresh=0
    if port_open "$port"; then continue; fi
    mkdir -p "$home"
    redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --dir "$home" \
      --pidfile "$home/redis.pid" --logfile "$home/redis.log" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((port + CLUSTER_BUS_OFFSET)) \
      --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" \
      --appendonly yes --appendfsync everysec --save "" --protected-mode yes
  done
  for port in $(cluster_ports); do wait_pong "$port" "$CLUSTER_HOME/$port/redis.log"; done
  if [ "$fresh" = 1 ] && ! cluster_ok; then
    say "creating a Redis Cluster on 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + 5)) (3 masters, 1 replica each)"
    local nodes=()
    for port in $(cluster_ports); do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$CLUSTER_HOME/create.log" 2>&1 \
      || die "redis-cli --cluster create failed (see $CLUSTER_HOME/create.log)"
  fi
  for _ in $(seq 1 120); do cluster_ok && { say "Redis Cluster ready on 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + 5))"; return 0; }; sleep 0.5; done
  die "Redis Cluster did not reach cluster_state:ok (see $CLUSTER_HOME/*/redis.log)"
}

stop_cluster() {
  local port
  for port in $(cluster_ports); do
    [ -f "$CLUSTER_HOME/$port/redis.pid" ] && say "stopping Redis Cluster node on port $port"
    stop_pidfile "$CLUSTER_HOME/$port/redis.pid" 10
  done
}

status_cluster() {
  if cluster_ok; then echo "redis cluster: running on 127.0.0.1:$REDIS_PORT-$((REDIS_PORT + 5))"
  else echo "redis cluster: not running (or not whole)"; return 1; fi
}

stop() {
  [ -f "$REDIS_HOME/redis.pid" ] && say "stopping Redis on port $REDIS_PORT"
  stop_pidfile "$REDIS_HOME/redis.pid" 10
}

status() {
  if port_open "$REDIS_PORT"; then echo "redis: running on 127.0.0.1:$REDIS_PORT"; else echo "redis: stopped"; return 1; fi
}

if [ "$REDIS_CLUSTER" = 1 ]; then
  case "${1:-}" in
    start) start_cluster ;;
    stop) stop_cluster ;;
    status) status_cluster ;;
    *) echo "usage: REDIS_CLUSTER=1 $0 start|stop|status" >&2; exit 2 ;;
  esac
  exit 0
fi
case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
