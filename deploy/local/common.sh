# Shared paths and ports of the local (no Docker) deployment. Sourced, not run.
# Every value can be overridden from the environment.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DATA_DIR="${SWITCHBOARD_DATA_DIR:-$REPO_ROOT/.data}"
KAFKA_PORT="${KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_LIBS="${KAFKA_LIBS:-$DATA_DIR/kafka-libs}"
KAFKA_HOME="$DATA_DIR/kafka-$KAFKA_PORT"
REDIS_PORT="${REDIS_PORT:-16379}"
REDIS_HOME="$DATA_DIR/redis-$REDIS_PORT"
RUN_DIR="$DATA_DIR/run"
VENV="${VENV:-$REPO_ROOT/.venv}"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31mxx\033[0m %s\n' "$*" >&2; exit 1; }

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Wait up to $2 seconds for port $1 to open.
wait_port() {
  local port=$1 timeout=$2 waited=0
  until port_open "$port"; do
    sleep 0.5; waited=$((waited + 1))
    if [ "$waited" -ge $((timeout * 2)) ]; then return 1; fi
  done
  return 0
}

# Stop the process whose pid is in file $1 (TERM, then KILL after $2 seconds).
stop_pidfile() {
  local pidfile=$1 grace=${2:-15} pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq $((grace * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$pidfile"
}
