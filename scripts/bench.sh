#!/usr/bin/env bash
# Benchmarks sse-server under N concurrent SSE streams (memory, CPU, latency) with examples/loadgen.rs.
# Usage: scripts/bench.sh [--quick] [--compare GIT-REF] [N ...]   (default N: 1000 5000 10000 and the
# most the limits allow; --compare also builds GIT-REF and runs it right before this build, for each N)
#        scripts/bench.sh --cluster [--quick] [N]   (cluster mode; see scripts/bench-cluster.sh)
set -euo pipefail

cd "$(dirname "$0")/.."
# --cluster: Redis and two instances against one instance (scripts/bench-cluster.sh).
if [[ ${1:-} == --cluster ]]; then shift; exec bash scripts/bench-cluster.sh "$@"; fi
# shellcheck source=scripts/clients/lib.sh
source scripts/clients/lib.sh # wait_for_line, cpu_ticks, result_field
unset SSE_PUBLISH_TOKEN # the load generator publishes from loopback, which needs no token

err() { echo "bench: $*" >&2; }

quick=0
sizes=()
compare=""
while (( $# > 0 )); do
  case "$1" in
    --quick) quick=1 ;;
    --compare) compare=${2:?--compare needs a git ref}; shift ;;
    ''|*[!0-9]*) err "unknown argument $1 (want --quick, --compare REF or numbers)"; exit 2 ;;
    *) sizes+=("$1") ;;
  esac
  shift
done

# Timer interval, steady window, broadcasts and clients closed at once.
interval=1s
if (( quick )); then
  duration=3s; window_s=2; broadcasts=2; close_max=50
else
  duration=10s; window_s=8; broadcasts=5; close_max=500
fi
loadgen_threads=2

server=target/release/sse-server
loadgen=target/release/examples/loadgen
out_dir=target/bench
mkdir -p "$out_dir"
# The quick run does not overwrite the last full table.
results="$out_dir/results.md"
if (( quick )); then results="$out_dir/results-quick.md"; fi

# 1. Build both in release mode; with --compare, the other build too, from a clean export of
#    that commit (the same load generator drives both).
cargo build --release --quiet --bin sse-server --example loadgen
builds=("new:$server")
if [[ -n "$compare" ]]; then
  ref_sha=$(git rev-parse --short "$compare^{commit}")
  ref_dir="target/bench-ref/$ref_sha"
  if [[ ! -x "$ref_dir/target/release/sse-server" ]]; then
    rm -rf "$ref_dir"; mkdir -p "$ref_dir"
    git archive "$ref_sha" | tar -x -C "$ref_dir"
    cargo build --release --quiet --bin sse-server --manifest-path "$ref_dir/Cargo.toml" --target-dir "$ref_dir/target"
  fi
  builds=("old $ref_sha:$ref_dir/target/release/sse-server" "${builds[@]}")
fi

# 2. Raise the open-file limit as far as the hard limit allows; it is inherited
#    by the server and the load generator.
hard=$(ulimit -Hn)
if [[ "$hard" == unlimited ]]; then hard=1048576; fi
ulimit -n "$hard" 2>/dev/null || err "could not raise ulimit -n to $hard"
fds=$(ulimit -n)

# 3. Which limit stops a larger N? Every stream costs one fd in each process,
#    one server thread (a task: pid_max, threads-max) and one ephemeral port.
#    A std thread also takes four memory mappings (its stack and guard page,
#    its signal stack and guard page) against vm.max_map_count; past that,
#    std aborts the process when the signal stack fails, so the server caps
#    --max-clients at (max_map_count - 1024) / 4 - 64 (src/main.rs).
pid_max=$(cat /proc/sys/kernel/pid_max)
threads_max=$(cat /proc/sys/kernel/threads-max)
map_count=$(cat /proc/sys/vm/max_map_count)
read -r port_low port_high < /proc/sys/net/ipv4/ip_local_port_range
# (A process may exit while find walks /proc; that is not an error here.)
tasks_now=$({ find /proc/[0-9]*/task -maxdepth 1 -mindepth 1 2>/dev/null || true; } | wc -l)
limit_names=("open files (ulimit -n $fds, per process)"
             "pids (kernel.pid_max $pid_max, $tasks_now tasks running)"
             "threads (kernel.threads-max $threads_max)"
             "memory maps (vm.max_map_count $map_count, 4 per server thread)"
             "ephemeral ports ($port_low-$port_high, per destination address)")
limit_values=($(( fds - 100 ))
              $(( pid_max - tasks_now - 200 ))
              $(( threads_max - tasks_now - 200 ))
              $(( (map_count - 1024) / 4 - 64 ))
              $(( port_high - port_low + 1 - 100 )))
max_n=${limit_values[0]}; stopper=${limit_names[0]}
echo "Limits on N (streams at once):"
for i in "${!limit_names[@]}"; do
  printf '  %-70s allows N <= %d\n' "${limit_names[$i]}" "${limit_values[$i]}"
  if (( limit_values[i] < max_n )); then max_n=${limit_values[$i]}; stopper=${limit_names[$i]}; fi
done
echo "  => the limit that stops a larger N: $stopper (N <= $max_n)"

if (( ${#sizes[@]} == 0 )); then
  if (( quick )); then
    sizes=(200)
  else
    for n in 1000 5000 10000; do (( n <= max_n )) && sizes+=("$n"); done
    top=$(( max_n / 1000 * 1000 ))
    (( top > 10000 )) && sizes+=("$top")
  fi
fi
for n in "${sizes[@]}"; do
  if (( n > max_n )); then err "N=$n is over the limit ($stopper allows $max_n)"; exit 1; fi
done

server_pid=""
loadgen_pid=""
cleanup() {
  if [[ -n "$loadgen_pid" ]]; then kill "$loadgen_pid" 2>/dev/null || true; fi
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

status_kib() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"; }
# Busy CPU time of the whole machine, in clock ticks (user nice system irq softirq steal).
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
mem_available_kib() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }
# Kernel memory that grows with connections: thread stacks and page tables
# (/proc/meminfo) plus live slab objects (task structs, sockets, files), counted
# as active objects x size in /proc/slabinfo, so slab pages left free by an
# earlier run do not hide new objects. Less disturbed by other processes' page
# cache than MemAvailable.
kernel_kib() {
  local slab_kib=0
  if [[ -r /proc/slabinfo ]]; then
    slab_kib=$(awk 'NR > 2 { sum += $2 * $4 } END { printf "%d", sum / 1024 }' /proc/slabinfo)
  fi
  awk -v slab="$slab_kib" '$1 == "KernelStack:" || $1 == "PageTables:" { sum += $2 } END { print sum + slab }' /proc/meminfo
}
clk_tck=$(getconf CLK_TCK)

header='| build | N | server RSS | RSS/conn | kernel/conn | MemAvailable Δ/conn | server CPU (1 core) at 1 s | CPU/frame | loadgen / other CPU | connect all | TTFB p99 | fan-out p99 | disconnect p99 (log) | /users drop | frame gap jitter p50 / p99 | tick late p99 | threads | checks |'
divider='|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|'
rows=()
passed=0
failed=0

for n in "${sizes[@]}"; do
for build in "${builds[@]}"; do
  label=${build%%:*}
  server=${build#*:}
  close=$(( n / 2 < close_max ? n / 2 : close_max ))
  server_log="$out_dir/server-${label%% *}-$n.log"
  loadgen_log="$out_dir/loadgen-${label%% *}-$n.log"
  echo "== $label, N=$n: fresh server, $n streams at interval $interval, steady ${duration}, $broadcasts broadcasts, close $close"

  # 4. A fresh server per N, so every number starts clean.
  mem_before=$(mem_available_kib)
  kernel_before=$(kernel_kib)
  "$server" --port 0 --interval "$interval" --max-clients $(( n + 100 )) > "$server_log" 2>&1 &
  server_pid=$!
  if ! wait_for_line "$server_log" 'listening on http://' 10 "$server_pid" >/dev/null; then
    err "server did not start"; cat "$server_log" >&2; exit 1
  fi
  port=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$server_log" | head -n 1)
  rss_idle=$(status_kib "$server_pid" VmRSS)

  # 5. The load generator; its progress lines (stderr) tell when all are connected.
  "$loadgen" --addr "127.0.0.1:$port" --clients "$n" --interval "$interval" --duration "$duration" \
    --broadcasts "$broadcasts" --close "$close" --threads "$loadgen_threads" --timeout 120s \
    --server-log "$server_log" > "$loadgen_log" 2>&1 &
  loadgen_pid=$!
  if ! wait_for_line "$loadgen_log" 'steady window' 180 "$loadgen_pid" >/dev/null; then
    err "N=$n: the load generator never reached the steady window"
    tail -n 5 "$loadgen_log" >&2
    grep -v -e '^open ' -e '^close ' "$server_log" | tail -n 10 >&2
    kill "$loadgen_pid" 2>/dev/null || true; wait "$loadgen_pid" 2>/dev/null || true; loadgen_pid=""
    kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=""
    rows+=("| $label | $n | run failed, see $loadgen_log and $server_log ||||||||||||||| FAIL |")
    failed=$(( failed + 1 ))
    continue
  fi

  # 6. Measure the server over a window with all N streams open and only ticks flowing.
  cpu_start=$(cpu_ticks "$server_pid"); start_ns=$(date +%s%N)
  loadgen_cpu_start=$(cpu_ticks "$loadgen_pid"); busy_start=$(machine_busy_ticks)
  sleep "$window_s"
  cpu_end=$(cpu_ticks "$server_pid"); end_ns=$(date +%s%N)
  loadgen_cpu_end=$(cpu_ticks "$loadgen_pid"); busy_end=$(machine_busy_ticks)
  rss=$(status_kib "$server_pid" VmRSS)
  threads=$(status_kib "$server_pid" Threads)
  loadgen_rss=$(status_kib "$loadgen_pid" VmRSS)
  mem_during=$(mem_available_kib)
  kernel_during=$(kernel_kib)

  loadgen_status=0
  wait "$loadgen_pid" || loadgen_status=$?
  loadgen_pid=""
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""

  sed -n '/^clients /,$p' "$loadgen_log"
  result=$(grep '^RESULT ' "$loadgen_log" || true)
  if [[ -z "$result" ]]; then
    err "N=$n: no RESULT line"; cat "$loadgen_log" >&2; exit 1
  fi
  if (( loadgen_status == 0 )); then passed=$(( passed + 1 )); checks=pass; else failed=$(( failed + 1 )); checks=FAIL; fi

  # 7. One table row. Kernel memory and MemAvailable count both ends of each
  #    connection (the load generator's sockets too); the MemAvailable delta
  #    leaves out the load generator's RSS but includes anything else the
  #    machine did meanwhile, so it is the noisier of the two.
  seconds=$(awk -v a="$start_ns" -v b="$end_ns" 'BEGIN { print (b - a) / 1e9 }')
  row=$(awk -v label="$label" -v n="$n" -v rss="$rss" -v idle="$rss_idle" -v before="$mem_before" -v during="$mem_during" \
      -v lg="$loadgen_rss" -v k0="$kernel_before" -v k1="$kernel_during" \
      -v l0="$loadgen_cpu_start" -v l1="$loadgen_cpu_end" -v b0="$busy_start" -v b1="$busy_end" -v c0="$cpu_start" -v c1="$cpu_end" -v hz="$clk_tck" -v s="$seconds" -v interval_s=1 'BEGIN {
    cpu_s = (c1 - c0) / hz
    frames = n * s / interval_s
    loadgen_pct = 100 * (l1 - l0) / hz / s
    other_pct = 100 * ((b1 - b0) - (c1 - c0) - (l1 - l0)) / hz / s
    printf "| %s | %d | %.1f MiB | %.1f KiB | %.1f KiB | %.1f KiB | %.1f %% | %.1f µs | %.0f %% / %.0f %% |", label, n, rss / 1024,
      (rss - idle) / n, (k1 - k0) / n, (before - during - lg) / n, 100 * cpu_s / s, 1e6 * cpu_s / frames,
      loadgen_pct, other_pct
  }')
  disconnect_log=$(result_field "$result" disconnect_p99_ms)
  disconnect_users=$(result_field "$result" disconnect_ms)
  row+=" $(result_field "$result" connect_ms) ms | $(result_field "$result" ttfb_p99_ms) ms | $(result_field "$result" fanout_p99_ms) ms |"
  row+=" $disconnect_log ms | $disconnect_users ms | $(result_field "$result" jitter_p50_ms) / $(result_field "$result" jitter_p99_ms) ms |"
  row+=" $(result_field "$result" tick_late_p99_ms) ms | $threads | $checks |"
  rows+=("$row")
done
done

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
{
  echo "## sse-server benchmark ($(date -u +%Y-%m-%d), $(if (( quick )); then echo quick; else echo full; fi))"
  echo
  echo "Machine: $(nproc) cores ($cpu_model), $mem_total RAM, Linux $(uname -r), $(rustc --version)."
  echo "Limits: ulimit -n $fds, pid_max $pid_max, threads-max $threads_max, max_map_count $map_count, ports $port_low-$port_high; a larger N is stopped by $stopper."
  echo "Server: --interval $interval, one thread per stream. Load generator: $loadgen_threads reader threads on the same machine, steady window $duration, $broadcasts broadcasts, then close min(N/2, $close_max) clients at once."
  echo "CPU and memory are sampled over ${window_s} s while all N streams are open and only timer frames flow; CPU/frame = server CPU time / (N x ticks); loadgen / other = CPU of the load generator and of everything else on the machine over the same window (% of one core; the machine has $(nproc) cores)."
  echo "kernel/conn = delta of KernelStack + PageTables (/proc/meminfo) + live slab objects (/proc/slabinfo); it and MemAvailable cover both ends of each connection (the load generator runs here too) and anything else the machine did meanwhile."
  echo "fan-out p99 = from just before POST /broadcast until the client read the event (all clients, all broadcasts); disconnect p99 = from close() until the server logged the close; /users drop = until GET /users showed all closed clients gone."
  echo
  echo "$header"
  echo "$divider"
  printf '%s\n' "${rows[@]}"
} > "$results"
echo
cat "$results"
echo
echo "$passed passed, $failed failed"
(( failed == 0 ))
