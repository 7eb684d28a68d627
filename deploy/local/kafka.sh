#!/usr/bin/env bash
# A real Apache Kafka (KRaft) from Maven Central jars, on 127.0.0.1: one broker, or a cluster.
#   kafka.sh fetch | start | stop | status        every broker
#   kafka.sh start-one <i> | stop-one <i> | kill <i>   one broker (i = 1..KAFKA_BROKERS)
# KAFKA_BROKERS=1 (default): one node on KAFKA_PORT (controller on KAFKA_CONTROLLER_PORT), data
# and log under .data/kafka-<port>/.
# KAFKA_BROKERS=3: three combined broker+controller nodes forming a 3-voter quorum; node i
# listens on KAFKA_PORT + 2(i-1) and its controller on the port after it (19092/19093,
# 19094/19095, 19096/19097 by default), data and log under .data/kafka-<port>-<i>/.
# `kill <i>` is SIGKILL (no controlled shutdown), for failure tests.
# Idempotent. See ../shared/kafka.md and docs/kafka-cluster.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BROKERS="${KAFKA_BROKERS:-1}"
[[ "$BROKERS" =~ ^[1-9]$ ]] || die "KAFKA_BROKERS must be a number from 1 to 9"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
# The same rule the services apply to their topics (docs/kafka-cluster.md), for the
# broker's defaults and its internal topics (consumer offsets, transactions).
REPLICATION=$((BROKERS < 3 ? BROKERS : 3))
MIN_ISR=$((REPLICATION >= 3 ? 2 : 1))

broker_port() { echo $((KAFKA_PORT + 2 * ($1 - 1))); }
controller_port() {
  if [ "$BROKERS" = 1 ]; then echo "$KAFKA_CONTROLLER_PORT"; else echo $(($(broker_port "$1") + 1)); fi
}
broker_home() {
  if [ "$BROKERS" = 1 ]; then echo "$KAFKA_HOME"; else echo "$DATA_DIR/kafka-$KAFKA_PORT-$1"; fi
}
voters() {
  local voters=() i
  for i in $(seq "$BROKERS"); do voters+=("$i@127.0.0.1:$(controller_port "$i")"); done
  (IFS=,; echo "${voters[*]}")
}
check_index() {
  [[ "${1:-}" =~ ^[1-9]$ ]] && [ "$1" -le "$BROKERS" ] || die "broker index must be 1..$BROKERS"
}

fetch() {
  # kafka-tools (reassignment, leader election) is checked too: older fetches lack it.
  if compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null &&
    compgen -G "$KAFKA_LIBS/kafka-tools-[0-9]*.jar" >/dev/null; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka jars"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka"
  say "fetching Kafka jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -B -q -Dstyle.color=never -f "$REPO_ROOT/deploy/local/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
}

# All nodes of one cluster share one cluster id, kept beside node 1's data.
cluster_id() {
  local file
  file="$(broker_home 1)/cluster.id"
  if [ ! -s "$file" ]; then
    mkdir -p "$(dirname "$file")"
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null >"$file"
  fi
  cat "$file"
}

write_config() {  # write_config <i>
  local home
  home=$(broker_home "$1")
  mkdir -p "$home/data"
  sed -e "s#@NODE_ID@#$1#g" -e "s#@VOTERS@#$(voters)#g" \
      -e "s#@PORT@#$(broker_port "$1")#g" -e "s#@CONTROLLER_PORT@#$(controller_port "$1")#g" \
      -e "s#@DATA@#$home/data#g" -e "s#@REPLICATION@#$REPLICATION#g" -e "s#@MIN_ISR@#$MIN_ISR#g" \
      "$REPO_ROOT/deploy/local/kafka/server.properties.in" > "$home/server.properties"
  if [ ! -f "$home/data/meta.properties" ]; then
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$(cluster_id)" \
      -c "$home/server.properties" --ignore-formatted >"$home/format.log" 2>&1 \
      || { cat "$home/format.log" >&2; die "formatting Kafka storage failed (node $1)"; }
  fi
}

launch() {  # launch <i>: start node i in the background unless it is running
  local home port
  home=$(broker_home "$1") port=$(broker_port "$1")
  if port_open "$port"; then say "Kafka node $1 already running on 127.0.0.1:$port"; return 0; fi
  write_config "$1"
  say "starting Kafka node $1 on 127.0.0.1:$port (log: $home/kafka.log)"
  # shellcheck disable=SC2086  # HEAP_OPTS is a list of JVM flags on purpose
  nohup java $HEAP_OPTS -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$home/server.properties" \
    >"$home/kafka.log" 2>&1 &
  echo $! >"$home/kafka.pid"
}

wait_started() {  # wait_started <i>: until node i logs that it serves clients
  local home
  home=$(broker_home "$1")
  for _ in $(seq 240); do
    grep -q "Kafka Server started" "$home/kafka.log" 2>/dev/null && return 0
    kill -0 "$(cat "$home/kafka.pid" 2>/dev/null || echo 0)" 2>/dev/null \
      || { tail -20 "$home/kafka.log" >&2; die "Kafka node $1 exited"; }
    sleep 0.25
  done
  tail -20 "$home/kafka.log" >&2
  die "Kafka node $1 did not start within 60 s"
}

start() {
  fetch
  local i
  # Launch every node before waiting: a node of a cluster only finishes starting once a
  # majority of the controller quorum is up.
  for i in $(seq "$BROKERS"); do launch "$i"; done
  for i in $(seq "$BROKERS"); do
    if [ -f "$(broker_home "$i")/kafka.pid" ]; then wait_started "$i"; fi
  done
  say "Kafka is up ($BROKERS node(s) from 127.0.0.1:$KAFKA_PORT)"
}

start_one() { check_index "$1"; fetch; launch "$1"; wait_started "$1"; say "Kafka node $1 is up"; }

stop() {
  # TERM every node first, then wait: stopped one at a time, the last nodes of a cluster
  # would wait for a controller quorum that is already gone.
  local i pid
  for i in $(seq "$BROKERS"); do
    local pidfile
    pidfile="$(broker_home "$i")/kafka.pid"
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    say "stopping Kafka node $i on port $(broker_port "$i")"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for i in $(seq "$BROKERS"); do stop_pidfile "$(broker_home "$i")/kafka.pid" 30; done
}

stop_one() { check_index "$1"; stop_pidfile "$(broker_home "$1")/kafka.pid" 30; }

kill_one() {
  check_index "$1"
  local pidfile
  pidfile="$(broker_home "$1")/kafka.pid"
  [ -f "$pidfile" ] || die "Kafka node $1 is not running (no $pidfile)"
  say "killing Kafka node $1 (SIGKILL)"
  kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
  while kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
}

status() {
  local i name running=0
  for i in $(seq "$BROKERS"); do
    name="kafka node $i"; [ "$BROKERS" = 1 ] && name="kafka"
    if port_open "$(broker_port "$i")"; then
      echo "$name: running on 127.0.0.1:$(broker_port "$i")"; running=$((running + 1))
    else
      echo "$name: stopped"
    fi
  done
  [ "$running" -gt 0 ]
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  start-one) start_one "${2:-}" ;;
  stop-one) stop_one "${2:-}" ;;
  kill) kill_one "${2:-}" ;;
  *) echo "usage: $0 fetch|start|stop|status|start-one <i>|stop-one <i>|kill <i>" >&2; exit 2 ;;
esac
