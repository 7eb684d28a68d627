#!/usr/bin/env bash
# A real Apache Kafka broker (KRaft, single node) from Maven Central jars, on 127.0.0.1.
#   kafka.sh fetch | start | stop | status
# Idempotent. Data and logs under .data/kafka-<port>/ (git-ignored). See ../shared/kafka.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

fetch() {
  if compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then return 0; fi
  command -v mvn >/dev/null || die "Maven (mvn) is needed to fetch the Kafka jars"
  command -v java >/dev/null || die "Java 17+ is needed to run Kafka"
  say "fetching Kafka jars from Maven Central into $KAFKA_LIBS"
  mkdir -p "$KAFKA_LIBS"
  mvn -B -q -Dstyle.color=never -f "$REPO_ROOT/deploy/local/kafka/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS"
}

write_config() {
  mkdir -p "$KAFKA_HOME/data"
  sed -e "s#@PORT@#$KAFKA_PORT#g" -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#g" \
      -e "s#@DATA@#$KAFKA_HOME/data#g" \
      "$REPO_ROOT/deploy/local/kafka/server.properties.in" > "$KAFKA_HOME/server.properties"
}

start() {
  if port_open "$KAFKA_PORT"; then say "Kafka already running on 127.0.0.1:$KAFKA_PORT"; return 0; fi
  fetch
  write_config
  if [ ! -f "$KAFKA_HOME/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null)
    java -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format -t "$cluster_id" \
      -c "$KAFKA_HOME/server.properties" --ignore-formatted >"$KAFKA_HOME/format.log" 2>&1 \
      || { cat "$KAFKA_HOME/format.log" >&2; die "formatting Kafka storage failed"; }
  fi
  say "starting Kafka on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_HOME/kafka.log)"
  nohup java -Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_HOME/server.properties" \
    >"$KAFKA_HOME/kafka.log" 2>&1 &
  echo $! >"$KAFKA_HOME/kafka.pid"
  for _ in $(seq 240); do
    grep -q "Kafka Server started" "$KAFKA_HOME/kafka.log" 2>/dev/null && { say "Kafka is up"; return 0; }
    kill -0 "$(cat "$KAFKA_HOME/kafka.pid")" 2>/dev/null || { tail -20 "$KAFKA_HOME/kafka.log" >&2; die "Kafka exited"; }
    sleep 0.25
  done
  tail -20 "$KAFKA_HOME/kafka.log" >&2
  die "Kafka did not start within 60 s"
}

stop() {
  if [ -f "$KAFKA_HOME/kafka.pid" ]; then say "stopping Kafka on port $KAFKA_PORT"; fi
  stop_pidfile "$KAFKA_HOME/kafka.pid" 30
}

status() {
  if port_open "$KAFKA_PORT"; then echo "kafka: running on 127.0.0.1:$KAFKA_PORT"; else echo "kafka: stopped"; return 1; fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
