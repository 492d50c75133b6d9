#!/usr/bin/env bash
# Runs a local Switchboard cluster without Docker, the topology of
# compose.yaml: one redis-server, three nodes on 127.0.0.1:8081-8083 sharing
# it, and nginx on 127.0.0.1:8080 in front of them with the config of
# deploy/nginx/switchboard.conf. Every process's output is shown prefixed
# with its name ([nginx], [node-1], [redis]).
#
#   scripts/cluster.sh            # then open http://127.0.0.1:8080
#   scripts/cluster.sh --redis-cluster   # the same on a 3-master Redis Cluster
#   NODES=5 LB_PORT=9000 REDIS_PORT=6400 scripts/cluster.sh
#
# With --redis-cluster, Redis is three cluster-enabled redis-servers on
# REDIS_PORT..REDIS_PORT+2 (their cluster bus on the same ports + 10000),
# made one cluster with redis-cli, and the nodes run with --redis-cluster.
#
# Ctrl-C stops the load balancer first, then the nodes with SIGTERM (they
# drain and close their sessions; each gets STOP_TIMEOUT seconds, then
# SIGKILL), then Redis, so that every node's last log lines appear. A second
# Ctrl-C kills whatever is left at once.
#
# Extra environment (SWITCHBOARD_JWT_SECRET, SWITCHBOARD_API_KEY, …) is passed
# to every node. Needs redis-server and nginx (apt-get install redis-server
# nginx); the nginx service itself may stay stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

redis_cluster=""
case "${1:-}" in
  --redis-cluster) redis_cluster=1 ;;
  "") ;;
  *) echo "usage: $0 [--redis-cluster]" >&2; exit 2 ;;
esac

NODES=${NODES:-3}
REDIS_PORT=${REDIS_PORT:-6390}
FIRST_PORT=${FIRST_PORT:-8081}
LB_PORT=${LB_PORT:-8080}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}

command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx not found: apt-get install nginx (or nginx-light)" >&2; exit 1; }

# Every process runs in its own session (setsid), or without setsid in its
# own process group (job control): Ctrl-C then reaches this script alone,
# which stops them in order, rather than all of them at once.
detach=()
if command -v setsid >/dev/null; then detach=(setsid); else set -m; fi

dir=$(mktemp -d)
names=() # every process started, in order, and its pid and prefixer's pid
declare -A pid prefixer

# start NAME COMMAND... runs COMMAND in the background, its output prefixed
# with [NAME]. The prefixer reads a FIFO, so it outlives the process and
# prints its last lines: it ends when the process (and its children) exit.
start() {
  local name=$1
  shift
  mkfifo "$dir/$name.out"
  sed -u "s/^/[$name] /" <"$dir/$name.out" &
  prefixer[$name]=$!
  "${detach[@]}" "$@" </dev/null >"$dir/$name.out" 2>&1 &
  pid[$name]=$!
  names+=("$name")
}

hurry=""
# stop SIGNAL NAME... signals the processes, waits for each (after
# STOP_TIMEOUT seconds, or at once after a second Ctrl-C, it kills it) and
# for its prefixer.
stop() {
  local sig=$1 name
  shift
  for name in "$@"; do kill "-$sig" "${pid[$name]}" 2>/dev/null || true; done
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for name in "$@"; do
    while kill -0 "${pid[$name]}" 2>/dev/null; do
      if [ -n "$hurry" ] || [ "$SECONDS" -ge "$deadline" ]; then
        echo "$name did not stop: killing it" >&2
        kill -KILL "${pid[$name]}" 2>/dev/null || true
      fi
      sleep 0.1
    done
    wait "${pid[$name]}" 2>/dev/null || true
    wait "${prefixer[$name]}" 2>/dev/null || true
  done
}

started() { [ -n "${pid[$1]:-}" ]; }

cleanup() {
  trap - EXIT
  trap 'hurry=1' INT TERM HUP
  echo
  echo "stopping the cluster: nginx, then the nodes (draining), then Redis"
  if started nginx; then stop TERM nginx; fi
  local nodes=()
  for name in "${names[@]}"; do
    case $name in node-*) nodes+=("$name") ;; esac
  done
  if [ ${#nodes[@]} -gt 0 ]; then stop TERM "${nodes[@]}"; fi
  local redises=()
  for name in "${names[@]}"; do
    case $name in redis*) redises+=("$name") ;; esac
  done
  if [ ${#redises[@]} -gt 0 ]; then stop TERM "${redises[@]}"; fi
  rm -rf "$dir"
  echo "cluster stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ready NAME URL waits up to 15 s for URL to answer 200, failing if NAME
# exits meanwhile.
ready() {
  for _ in $(seq 150); do
    kill -0 "${pid[$1]}" 2>/dev/null || { echo "$1 exited at startup" >&2; exit 1; }
    "$dir/switchboard" healthcheck --url "$2" --timeout 1s 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 not ready at $2 after 15 s" >&2
  exit 1
}

echo "building switchboard"
go build -o "$dir/switchboard" ./cmd/switchboard

# redis_up PORT waits up to 5 s for the redis-server on PORT to answer.
redis_up() {
  for _ in $(seq 50); do
    redis-cli -p "$1" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "redis-server on port $1 did not start" >&2
  exit 1
}

if [ -n "$redis_cluster" ]; then
  command -v redis-cli >/dev/null || { echo "redis-cli not found: apt-get install redis-tools" >&2; exit 1; }
  seeds=()
  for i in 1 2 3; do
    port=$((REDIS_PORT + i - 1))
    mkdir "$dir/redis-$i"
    start "redis-$i" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$dir/redis-$i" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-require-full-coverage no
    seeds+=("127.0.0.1:$port")
  done
  for i in 1 2 3; do redis_up $((REDIS_PORT + i - 1)); done
  redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" cluster info 2>/dev/null | grep -q '^cluster_state:ok' && break
    sleep 0.1
  done
  redis_url="redis://${seeds[0]}?addr=${seeds[1]}&addr=${seeds[2]}"
  export SWITCHBOARD_REDIS_CLUSTER=true
  echo "redis cluster on ${seeds[*]}"
else
  start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir"
  redis_up "$REDIS_PORT"
  redis_url="redis://127.0.0.1:$REDIS_PORT/0"
  echo "redis on 127.0.0.1:$REDIS_PORT"
fi

upstreams=()
for i in $(seq "$NODES"); do
  port=$((FIRST_PORT + i - 1))
  SWITCHBOARD_ADDR="127.0.0.1:$port" SWITCHBOARD_NODE_ID="node-$i" \
    SWITCHBOARD_REDIS_URL="$redis_url" SWITCHBOARD_LOG_FORMAT=console \
    SWITCHBOARD_TRUSTED_PROXIES="${SWITCHBOARD_TRUSTED_PROXIES:-127.0.0.1}" \
    start "node-$i" "$dir/switchboard"
  upstreams+=("127.0.0.1:$port")
done
for i in $(seq "$NODES"); do
  ready "node-$i" "http://127.0.0.1:$((FIRST_PORT + i - 1))/readyz"
  echo "node-$i on http://127.0.0.1:$((FIRST_PORT + i - 1))"
done

mkdir "$dir/nginx"
deploy/nginx/render.sh "$dir/nginx" "127.0.0.1:$LB_PORT" "${upstreams[@]}" >/dev/null
start nginx nginx -e stderr -p "$dir/nginx" -c "$dir/nginx/nginx.conf"
ready nginx "http://127.0.0.1:$LB_PORT/healthz"

echo
echo "open http://127.0.0.1:$LB_PORT (the web client), or"
echo "  wscat -c 'ws://127.0.0.1:$LB_PORT/ws?name=alice' and wscat -c 'ws://127.0.0.1:$LB_PORT/ws?name=bob'"
echo "Ctrl-C stops the cluster"
wait "${pid[nginx]}" || true
echo "nginx exited" >&2
exit 1
