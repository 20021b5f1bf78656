#!/usr/bin/env bash
# Runs real clients (curl, Chromium on the demo page, the eventsource npm package, curl and
# sse-server listen through nginx, sse-server listen/publish, Chromium on a cluster behind nginx)
# against freshly built servers, and the parser differential test. Usage: scripts/clients.sh   (setup: scripts/clients/install.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIENTS="$ROOT/scripts/clients"
export LC_ALL=C
unset SSE_PUBLISH_TOKEN # the clients publish from loopback, which needs no token
err() { printf '%s\n' "$*" >&2; }

PASSED=0
FAILED=0
SERVER_PID=""
WORK=$(mktemp -d -t sse-clients.XXXXXX)
cleanup() { if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; fi; rm -rf "$WORK"; }
trap cleanup EXIT

# 1. What the clients need. In CI, install it; elsewhere say what is missing (and fail for it).
missing() {
  local what=()
  [[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || what+=(chromium)
  command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || what+=(nginx)
  command -v curl >/dev/null || what+=(curl)
  command -v python3 >/dev/null || what+=(python3)
  command -v redis-server >/dev/null || what+=(redis-server)
  command -v node >/dev/null || what+=(node)
  [[ -d $CLIENTS/node_modules/playwright-core && -d $CLIENTS/node_modules/eventsource &&
    -d $CLIENTS/node_modules/eventsource-parser ]] || what+=(node_modules)
  echo "${what[*]}"
}
if [[ -n $(missing) && ${CI:-} == true ]]; then "$CLIENTS/install.sh" || err "scripts/clients/install.sh failed"; fi
absent=" $(missing) "
if [[ $absent != "  " ]]; then
  err "missing:$absent- install with scripts/clients/install.sh (as root, or with CI=true)"
fi

# 2. Build and start the server; read its port from the "listening on" line.
# SSE_BIN runs another build of the server (then nothing is built). The browser check also
# wants a build with graceful shutdown, for the page's handling of the `shutdown` event.
if [[ -z ${SSE_BIN:-} ]]; then
  (cd "$ROOT" && cargo build --release --quiet && cargo build --release --quiet --example eventstream_dump &&
    cargo build --release --quiet --features ctrlc --target-dir target/ctrlc) ||
    { err "cargo build --release failed"; echo "0 passed, 1 failed"; exit 1; }
fi
LOG="$WORK/server.log"
"${SSE_BIN:-$ROOT/target/release/sse-server}" --port 0 --interval 200ms --retry 500ms >"$LOG" 2>&1 &
SERVER_PID=$!
url=""
for _ in $(seq 500); do
  url=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$LOG")
  [[ -n $url ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.02
done
if [[ -z $url ]]; then err "the server did not print 'listening on' within 10 s"; cat "$LOG" >&2; echo "0 passed, 1 failed"; exit 1; fi
export SSE_URL=$url SSE_LOG=$LOG SSE_RETRY_MS=500
echo "server: $SSE_URL (log $LOG)"

# 3. Each client script, bounded in time; its last line is its own "N passed, M failed".
run_client() {
  local name=$1 needs=$2; shift 2
  local need
  for need in $needs; do
    if [[ $absent == *" $need "* ]]; then
      FAILED=$((FAILED + 1)); echo "== $name: FAIL, $need is missing (scripts/clients/install.sh)"
      echo "RESULT client=$name connected=missing-$need" >>"$WORK/results"; return
    fi
  done
  echo "== $name"
  local rc=0
  timeout 120 "$@" >"$WORK/$name.out" 2>&1 || rc=$?
  cat "$WORK/$name.out"
  grep '^RESULT ' "$WORK/$name.out" >>"$WORK/results" || echo "RESULT client=$name connected=FAIL" >>"$WORK/results"
  local tally
  tally=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$WORK/$name.out" | tail -1 || true)
  if [[ -n $tally ]]; then
    PASSED=$((PASSED + ${tally%% *}))
    tally=${tally#*, }; FAILED=$((FAILED + ${tally%% *}))
  fi
  if ((rc != 0)) && [[ -z $tally || $tally == "0 failed" ]]; then
    FAILED=$((FAILED + 1)); echo "FAIL $name exited with code $rc"
  fi
}
run_client curl "curl" bash "$CLIENTS/curl.sh"
run_client node-eventsource "node node_modules" node "$CLIENTS/node-eventsource.mjs"
run_client browser "node node_modules chromium" node "$CLIENTS/browser.mjs"
run_client nginx "curl nginx python3" bash "$CLIENTS/nginx.sh"
run_client listen "" bash "$CLIENTS/listen.sh"
run_client parser-diff "node node_modules" node "$CLIENTS/parser-diff.mjs"
run_client browser-cluster "node node_modules chromium nginx redis-server python3" node "$CLIENTS/browser-cluster.mjs"

# 4. One row per client.
echo
printf '%-17s %-9s %-6s %-6s %-13s %-5s %-6s %-13s %s\n' client connected frames pushed Last-Event-ID hole close "first byte ms" "push ms"
while read -r _ fields; do
  declare -A row=([connected]=- [frames]=- [pushed]=- [reconnect]=- [hole]=- [close]=- [first_byte_ms]=- [latency_ms]=-)
  for field in $fields; do row[${field%%=*}]=${field#*=}; done
  printf '%-17s %-9s %-6s %-6s %-13s %-5s %-6s %-13s %s\n' "${row[client]}" "${row[connected]}" "${row[frames]}" \
    "${row[pushed]}" "${row[reconnect]}" "${row[hole]}" "${row[close]}" "${row[first_byte_ms]}" "${row[latency_ms]}"
  unset row
done <"$WORK/results"
echo
if ((FAILED > 0)); then err "--- server log (last 30 lines) ---"; tail -n 30 "$LOG" >&2; fi
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
