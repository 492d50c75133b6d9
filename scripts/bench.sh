#!/usr/bin/env bash
# Runs the performance table of docs/benchmarks.md on this machine: each row
# against Switchboard and, when $CENTRIFUGO names a Centrifugo v6 binary,
# against Centrifugo right after it, with the same load and the same pinning,
# then prints both servers' figures side by side.
#
#   scripts/bench.sh                       # every row, 10 s of publishing each
#   scripts/bench.sh memory-1000 idle-10000
#   DURATION=30 CENTRIFUGO=/path/to/centrifugo scripts/bench.sh redis-5000
#
# Rows: memory-1000 (1 000 subscribers x 200 msg/s), memory-5000 (5 000 x 50),
# redis-1000, redis-5000 (the same with Redis; its CPU is counted),
# idle-10000 (RSS per idle connection), join-5000 (5 000 joins into one room);
# rooms-redis and rooms-cluster (1 000 subscribers in 30 rooms, 1 000 msg/s,
# on one Redis and on a three-master Redis Cluster, every Redis process's CPU
# counted; Switchboard only). One room unless said, 100-byte payloads,
# publishes through the HTTP API.
#
# The server (and redis-server) run pinned to core 1, the load tool to core
# 0 (`taskset`). Everything listens on 127.0.0.1; each server is started
# fresh for its row and stopped by PID when the row ends, or on Ctrl-C.
# Environment: DURATION (seconds of publishing per row, default 10),
# CENTRIFUGO, SWITCHBOARD (a prebuilt server binary to measure instead of
# this tree's; the load tool is always this tree's), SERVER_CPU and BENCH_CPU (default 1 and 0), PORT (default
# 18080), REDIS_PORT (default 16379), BENCH_ARGS (extra bench flags).
# Raw JSON results stay in $OUT (default: a temporary directory, printed).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
SERVER_CPU=${SERVER_CPU:-1}
BENCH_CPU=${BENCH_CPU:-0}
PORT=${PORT:-18080}
REDIS_PORT=${REDIS_PORT:-16379}
BENCH_ARGS=${BENCH_ARGS:-}
KEY=bench-key
ALL_ROWS="memory-1000 memory-5000 redis-1000 redis-5000 idle-10000 join-5000 rooms-redis rooms-cluster"
rows=${*:-$ALL_ROWS}

for row in $rows; do
  case " $ALL_ROWS " in *" $row "*) ;; *) echo "bench.sh: unknown row $row (rows: $ALL_ROWS)" >&2; exit 2 ;; esac
done
case "$DURATION" in '' | *[!0-9]* | 0) echo "bench.sh: DURATION must be whole seconds" >&2; exit 2 ;; esac
command -v taskset >/dev/null || { echo "bench.sh: taskset not found (util-linux)" >&2; exit 1; }
if [ -n "${CENTRIFUGO:-}" ] && [ ! -x "$CENTRIFUGO" ]; then
  echo "bench.sh: CENTRIFUGO=$CENTRIFUGO is not an executable" >&2; exit 1
fi

work=$(mktemp -d)
OUT=${OUT:-$work}
mkdir -p "$OUT"
started=() # PIDs this script started; only these are ever stopped
stop_started() {
  for pid in "${started[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${started[@]}"; do wait "$pid" 2>/dev/null || true; done
  started=()
}
cleanup() {
  trap - INT TERM EXIT
  stop_started
  [ "$OUT" = "$work" ] || rm -rf "$work"
}
trap cleanup INT TERM EXIT

# The servers need a descriptor per connection and then some.
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt 11000 ]; then
  echo "bench.sh: ulimit -n is $(ulimit -n); idle-10000 needs at least 11000 (raise the hard limit)" >&2
fi

echo "building switchboard into $work"
go build -o "$work/bench" ./cmd/switchboard # the load tool: always this tree's
if [ -n "${SWITCHBOARD:-}" ]; then
  cp "$SWITCHBOARD" "$work/switchboard" # a prebuilt server, e.g. an older commit's, to compare
else
  cp "$work/bench" "$work/switchboard"
fi

wait_http() { # wait_http URL: until anything answers HTTP there
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  echo "bench.sh: nothing answers at $1" >&2
  return 1
}

start_redis() {
  taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  redis_pid=$!
  started+=("$redis_pid")
  for _ in $(seq 50); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench.sh: redis-server did not start" >&2
  return 1
}

# start_redis_cluster: three cluster-enabled redis-servers on REDIS_PORT..+2
# made one cluster; sets redis_pid to their PIDs, comma-separated.
start_redis_cluster() {
  local pids=() seeds=() i port
  for i in 0 1 2; do
    port=$((REDIS_PORT + i))
    mkdir -p "$work/redis-$i"
    taskset -c "$SERVER_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
      --dir "$work/redis-$i" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-require-full-coverage no >"$work/redis-$i.log" 2>&1 &
    pids+=("$!")
    started+=("$!")
    seeds+=("127.0.0.1:$port")
  done
  for i in 0 1 2; do
    for _ in $(seq 50); do
      redis-cli -p $((REDIS_PORT + i)) ping >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" cluster info | grep -q '^cluster_state:ok' && break
    sleep 0.1
  done
  redis_pid=$(IFS=,; echo "${pids[*]}")
  cluster_url="redis://${seeds[0]}?addr=${seeds[1]}&addr=${seeds[2]}"
}

# start_server TARGET ENGINE: starts the server, sets server_pids and url.
start_server() {
  local target=$1 engine=$2
  server_pids=""
  case "$engine" in
    redis) start_redis ;;
    cluster) start_redis_cluster ;;
  esac
  if [ "$target" = switchboard ]; then
    local redis_args=()
    [ "$engine" = redis ] && redis_args=(--redis-url "redis://127.0.0.1:$REDIS_PORT/0")
    [ "$engine" = cluster ] && redis_args=(--redis-cluster --redis-url "$cluster_url")
    taskset -c "$SERVER_CPU" "$work/switchboard" --addr "127.0.0.1:$PORT" --api-key "$KEY" \
      --max-connections 20000 --max-connections-per-ip 0 --rate-limit 0 --log-level warn --log-format json \
      "${redis_args[@]}" >"$work/switchboard.log" 2>&1 &
    server_pids=$!
    started+=("$!")
    wait_http "http://127.0.0.1:$PORT/healthz"
  else
    local engine_json='{"type":"memory"}'
    [ "$engine" = redis ] && engine_json="{\"type\":\"redis\",\"redis\":{\"address\":[\"redis://127.0.0.1:$REDIS_PORT\"]}}"
    cat >"$work/centrifugo.json" <<EOF
{"http_server":{"address":"127.0.0.1","port":$PORT},"client":{"allow_anonymous_connect_without_token":true},
"http_api":{"key":"$KEY"},"channel":{"namespaces":[{"name":"bench","allow_subscribe_for_anonymous":true,
"allow_subscribe_for_client":true}]},"engine":$engine_json,"log":{"level":"warn"}}
EOF
    taskset -c "$SERVER_CPU" "$CENTRIFUGO" -c "$work/centrifugo.json" >"$work/centrifugo.log" 2>&1 &
    server_pids=$!
    started+=("$!")
    wait_http "http://127.0.0.1:$PORT/"
  fi
  if [ "$engine" != memory ]; then server_pids="$server_pids,$redis_pid"; fi
  sleep 1 # let the server settle before the baseline RSS sample
}

# bench ROW TARGET: runs one row against one server, JSON into $OUT.
bench() {
  local row=$1 target=$2 engine=memory rooms=1 args=()
  case "$row" in
    memory-1000) args=(--conns 1000 --rate 200 --messages $((200 * DURATION))) ;;
    memory-5000) args=(--conns 5000 --rate 50 --messages $((50 * DURATION))) ;;
    redis-1000) engine=redis; args=(--conns 1000 --rate 200 --messages $((200 * DURATION))) ;;
    redis-5000) engine=redis; args=(--conns 5000 --rate 50 --messages $((50 * DURATION))) ;;
    idle-10000) args=(--mode idle --conns 10000 --hold 5s) ;;
    join-5000) args=(--mode idle --join --conns 5000 --hold 1s) ;;
    rooms-redis) engine=redis; rooms=30; args=(--conns 1000 --rate 1000 --messages $((1000 * DURATION))) ;;
    rooms-cluster) engine=cluster; rooms=30; args=(--conns 1000 --rate 1000 --messages $((1000 * DURATION))) ;;
  esac
  start_server "$target" "$engine"
  echo "== $row: $target ($engine)"
  # shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
  taskset -c "$BENCH_CPU" "$work/bench" bench --target "$target" --url "ws://127.0.0.1:$PORT" \
    --api-key "$KEY" --rooms "$rooms" --size 100 --pid "$server_pids" --json "${args[@]}" $BENCH_ARGS \
    >"$OUT/$row-$target.json" || echo "bench.sh: $row against $target failed (see above)" >&2
  stop_started
}

field() { # field FILE NAME: a number from a bench JSON result, or -
  [ -s "$1" ] || { echo -; return; }
  local v
  v=$(grep -o "\"$2\":[-0-9.e+]*" "$1" | head -1 | cut -d: -f2)
  [ -n "$v" ] || { echo -; return; }
  awk -v v="$v" 'BEGIN { if (v == int(v) || v >= 1000) printf "%.0f\n", v; else printf "%.3f\n", v }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

report_row() { # report_row ROW: one line per figure, both servers side by side
  local row=$1 names
  case "$row" in
    idle-*) names="kib_per_connection rss_kib connected" ;;
    join-*) names="join_seconds joined join_errors kib_per_connection" ;;
    *) names="deliveries_per_cpu_second p50 p99 max deliveries_per_second lost duplicates publish_errors publish_timeouts cpu_seconds bench_cpu_seconds" ;;
  esac
  for n in $names; do
    local sb cf
    sb=$(field "$OUT/$row-switchboard.json" "$n")
    cf=$(field "$OUT/$row-centrifugo.json" "$n")
    printf '%-12s %-26s %14s %14s %8s\n' "$row" "$n" "$sb" "$cf" "$(ratio "$sb" "$cf")"
  done
}

targets=switchboard
[ -n "${CENTRIFUGO:-}" ] && targets="switchboard centrifugo"
for row in $rows; do
  for target in $targets; do
    case "$row/$target" in rooms-*/centrifugo) continue ;; esac # Switchboard's own comparison
    bench "$row" "$target"
  done
done

echo
echo "Figures: server cores $SERVER_CPU, bench core $BENCH_CPU, ${DURATION}s of publishing per row (latencies in ms; raw JSON in $OUT)"
printf '%-12s %-26s %14s %14s %8s\n' row figure switchboard centrifugo sb/cf
for row in $rows; do report_row "$row"; done
