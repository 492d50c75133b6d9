#!/usr/bin/env bash
# Runs a local Switchboard cluster without Docker: one redis-server and three
# nodes on 127.0.0.1:8081-8083 sharing it. Ctrl-C stops them all.
#
#   scripts/cluster.sh            # nodes on 8081 8082 8083, Redis on 6390
#   NODES=5 REDIS_PORT=6400 scripts/cluster.sh
#
# Extra environment (SWITCHBOARD_JWT_SECRET, SWITCHBOARD_API_KEY, …) is passed
# to every node.
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-3}
REDIS_PORT=${REDIS_PORT:-6390}
FIRST_PORT=${FIRST_PORT:-8081}

command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }

dir=$(mktemp -d)
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping cluster"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup INT TERM EXIT

echo "building switchboard"
go build -o "$dir/switchboard" ./cmd/switchboard

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
echo "redis on 127.0.0.1:$REDIS_PORT"

for i in $(seq "$NODES"); do
  port=$((FIRST_PORT + i - 1))
  SWITCHBOARD_ADDR="127.0.0.1:$port" SWITCHBOARD_NODE_ID="node-$i" \
    SWITCHBOARD_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" SWITCHBOARD_LOG_FORMAT=console \
    "$dir/switchboard" > >(sed -u "s/^/[node-$i] /") 2>&1 &
  pids+=($!)
  echo "node-$i on ws://127.0.0.1:$port/ws"
done

echo "try: wscat -c 'ws://127.0.0.1:$FIRST_PORT/ws?name=alice' and wscat -c 'ws://127.0.0.1:$((FIRST_PORT + NODES - 1))/ws?name=bob'"
wait
