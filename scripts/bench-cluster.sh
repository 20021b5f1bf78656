#!/usr/bin/env bash
# Cluster benchmark: Redis and 2 instances here, N/2 streams on each, broadcasts published on A; then one instance
# with all N, side by side. Usage: scripts/bench.sh --cluster [--quick] [N]   (default N 15000; --quick: 1000)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/clients/lib.sh
source scripts/clients/lib.sh # free_port, wait_for_line, cpu_ticks, result_field
unset SSE_PUBLISH_TOKEN SSE_REDIS_URL
err() { echo "bench-cluster: $*" >&2; }

quick=0
n=""
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    '' | *[!0-9]*) err "unknown argument $arg (want --quick or a number)"; exit 2 ;;
    *) n=$arg ;;
  esac
done
if ((quick)); then
  n=${n:-1000}; duration=3s; window_s=2; broadcasts=3; publishes=50
else
  n=${n:-15000}; duration=10s; window_s=8; broadcasts=5; publishes=200
fi
((n % 2 == 0)) || { err "N must be even (N/2 streams per instance)"; exit 2; }
interval=1s
command -v redis-server >/dev/null || { err "redis-server is required (apt-get install redis-server)"; exit 1; }
command -v curl >/dev/null || { err "curl is required"; exit 1; }

server=target/release/sse-server
loadgen=target/release/examples/loadgen
out_dir=target/bench
mkdir -p "$out_dir"
results="$out_dir/results-cluster.md"
((quick)) && results="$out_dir/results-cluster-quick.md"
cargo build --release --quiet --bin sse-server --example loadgen

hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard" 2>/dev/null || err "could not raise ulimit -n to $hard"

WORK=$(mktemp -d -t sse-bench-cluster.XXXXXX)
PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

rss_kib() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
clk_tck=$(getconf CLK_TCK)

# start_instance NAME ARGS...: sets STARTED_PORT (not a $(…) subshell: PIDS must be ours).
start_instance() {
  local name=$1; shift
  "$server" --port 0 --interval "$interval" --max-clients $((n + 100)) "$@" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  wait_for_line "$WORK/$name.log" "listening on http://" 20 "${PIDS[-1]}" >/dev/null ||
    { err "$name did not start"; cat "$WORK/$name.log" >&2; exit 1; }
  STARTED_PORT=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/$name.log" | head -n 1)
}

# publish_latency PORT COUNT: p50 and p99 of POST /send → 202, in ms (curl's own timer).
publish_latency() {
  local port=$1 count=$2 i
  for ((i = 0; i < count; i++)); do
    curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -d "latency $i" "http://127.0.0.1:$port/send/nobody" || true
  done >"$WORK/publish.txt"
  local bad
  bad=$(awk '$1 != 202' "$WORK/publish.txt" | wc -l)
  awk '$1 == 202 { printf "%.3f\n", $2 * 1000 }' "$WORK/publish.txt" | sort -n |
    awk -v bad="$bad" '{ t[NR] = $1 } END { if (NR == 0) { print "- - " bad; exit }
      p50 = int(NR * 0.50); p99 = int(NR * 0.99); if (p50 < 1) p50 = 1; if (p99 < 1) p99 = 1
      printf "%.2f %.2f %d\n", t[p50], t[p99], bad }'
}

# run SETUP PIDS_TO_SAMPLE LOADGEN_ARGS...: one loadgen run; appends a table row.
rows=()
failed=0
run() {
  local setup=$1 sample=$2; shift 2
  local log="$WORK/loadgen-$setup.log"
  "$loadgen" --clients "$n" --interval "$interval" --duration "$duration" --broadcasts "$broadcasts" \
    --close 0 --threads 2 --timeout 180s "$@" >"$log" 2>&1 &
  local loadgen_pid=$!
  if ! wait_for_line "$log" "steady window" 300 "$loadgen_pid" >/dev/null; then
    err "$setup: the load generator never reached the steady window"; tail -n 5 "$log" >&2
    kill "$loadgen_pid" 2>/dev/null || true; wait "$loadgen_pid" 2>/dev/null || true
    rows+=("| $setup | $n | run failed ||||||| FAIL |"); failed=$((failed + 1)); return
  fi
  local pid before=0 after=0 rss=0 start_ns end_ns
  for pid in $sample; do before=$((before + $(cpu_ticks "$pid"))); done
  start_ns=$(date +%s%N)
  sleep "$window_s"
  for pid in $sample; do after=$((after + $(cpu_ticks "$pid"))); rss=$((rss + $(rss_kib "$pid"))); done
  end_ns=$(date +%s%N)
  # Publish latency while every stream is open (and the broadcasts run).
  local control_port
  control_port=$(sed -n 's/.*--addr 127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$*")
  read -r pub_p50 pub_p99 pub_bad < <(publish_latency "$control_port" "$publishes")
  local status=0
  wait "$loadgen_pid" || status=$?
  sed -n '/^clients /,$p' "$log"
  local result
  result=$(grep '^RESULT ' "$log" || true)
  local checks=pass
  if ((status != 0)) || [[ -z $result ]] || [[ $pub_bad != 0 ]]; then checks=FAIL; failed=$((failed + 1)); fi
  local cpu
  cpu=$(awk -v a="$before" -v b="$after" -v hz="$clk_tck" -v s0="$start_ns" -v s1="$end_ns" -v n="$n" 'BEGIN {
    s = (s1 - s0) / 1e9; cpu = (b - a) / hz
    printf "%.0f %% | %.1f µs", 100 * cpu / s, 1e6 * cpu / (n * s) }')
  rows+=("| $setup | $n | $(result_field "$result" fanout_p50_ms) / $(result_field "$result" fanout_p99_ms) ms | $pub_p50 / $pub_p99 ms | $cpu | $((rss / 1024)) MiB | $checks |")
}

# 1. Cluster: Redis, A and B; streams alternate between them; broadcasts and publishes go to A.
echo "== cluster: redis-server + 2 instances, $((n / 2)) streams each, broadcasts on A"
redis_port=$(free_port)
mkdir -p "$WORK/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" \
  --logfile "$WORK/redis.log" &
PIDS+=($!)
redis_pid=${PIDS[-1]}
wait_for_line "$WORK/redis.log" "Ready to accept connections" 10 "$redis_pid" >/dev/null || { err "redis did not start"; exit 1; }
start_instance a --redis "redis://127.0.0.1:$redis_port"
port_a=$STARTED_PORT
start_instance b --redis "redis://127.0.0.1:$redis_port"
port_b=$STARTED_PORT
run "cluster (A + B + redis)" "${PIDS[1]} ${PIDS[2]} $redis_pid" \
  --addr "127.0.0.1:$port_a" --stream-addrs "127.0.0.1:$port_a,127.0.0.1:$port_b"
stop_all

# 2. The same load on one instance, in process.
echo "== one instance, $n streams"
start_instance single
run "one instance" "${PIDS[0]}" --addr "127.0.0.1:$STARTED_PORT"
stop_all

{
  echo "## sse-server cluster benchmark ($(date -u +%Y-%m-%d), $(if ((quick)); then echo quick; else echo full; fi))"
  echo
  echo "Machine: $(nproc) cores, $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Redis $(redis-server --version | awk '{ sub(/^v=/, "", $3); print $3 }'). --interval $interval, $broadcasts broadcasts, $publishes publishes."
  echo "fan-out = from just before POST /broadcast (on A) until each client read it, all N clients; publish = POST /send → 202 (curl time_total, sequential, while all streams are open);"
  echo "CPU = the server processes (and redis-server) over ${window_s} s with only timer frames flowing, % of one core and per delivered frame."
  echo
  echo "| setup | N | fan-out p50 / p99 | publish p50 / p99 | CPU | CPU/frame | RSS | checks |"
  echo "|---|---:|---:|---:|---:|---:|---:|:---|"
  printf '%s\n' "${rows[@]}"
} >"$results"
echo
cat "$results"
echo
echo "$((${#rows[@]} - failed)) passed, $failed failed"
((failed == 0))
