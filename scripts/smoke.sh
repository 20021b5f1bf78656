#!/usr/bin/env bash
# Smoke test with curl: build, start the server on a free port, check headers, frames, a pushed
# message and the close log line. Usage: scripts/smoke.sh  (SSE_SERVER_BIN=path skips the build)
set -euo pipefail

cd "$(dirname "$0")/.."
unset SSE_PUBLISH_TOKEN # publishing from loopback needs no token
err() { echo "smoke: $*" >&2; }

command -v curl >/dev/null || { err "curl is required"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}
contains() { case "$1" in *"$2"*) return 0 ;; *) return 1 ;; esac; }

binary=${SSE_SERVER_BIN:-}
if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary=target/release/sse-server
fi
log=$(mktemp)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -f "$log"
}
trap cleanup EXIT

"$binary" --port 0 --interval 200ms >"$log" &
server_pid=$!

# Wait for the "listening on" line instead of sleeping a fixed time.
base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$log" | head -n 1)
  [ -n "$base" ] && break
  sleep 0.05
done
[ -n "$base" ] || { err "server did not start"; cat "$log" >&2; exit 1; }

# 1. Headers and at least two frames. curl exits 28 when --max-time ends the endless stream.
rc=0
out=$(curl -sS -N -D - --max-time 1.5 "$base/sse/smoke" 2>/dev/null) || rc=$?
check "curl ends by its own timeout (exit 28)" "$([ "$rc" -eq 28 ]; echo $?)"
check "status line is 200 OK" "$(contains "$out" $'HTTP/1.1 200 OK\r'; echo $?)"
check "content type is text/event-stream" "$(contains "$out" $'Content-Type: text/event-stream; charset=utf-8\r'; echo $?)"
check "cache control" "$(contains "$out" $'Cache-Control: no-cache, no-transform\r'; echo $?)"
check "x-accel-buffering" "$(contains "$out" $'X-Accel-Buffering: no\r'; echo $?)"
check "comment comes first" "$(contains "$out" $'\r\n\r\n:\n\n'; echo $?)"
frames=$(grep -c '^data: {"userId":"smoke","users":1,"time":[0-9]*}$' <<<"$out" || true)
check "at least two frames ($frames)" "$([ "$frames" -ge 2 ]; echo $?)"

# 2. Closing curl is logged as a close (poll for up to 2 s).
closed=1
for _ in $(seq 1 40); do
  if grep -q 'close user="smoke" .*reason=eof' "$log"; then closed=0; break; fi
  sleep 0.05
done
check "close is logged" "$closed"

# 3. A message published with curl -d arrives in a curl -N stream.
stream_out=$(mktemp)
curl -sS -N --max-time 3 "$base/sse/pushy" >"$stream_out" 2>/dev/null &
curl_pid=$!
for _ in $(seq 1 40); do grep -q 'open user="pushy"' "$log" && break; sleep 0.05; done
reply=$(curl -sS --max-time 5 -d 'hello from curl' "$base/send/pushy?event=greeting") || true
check "publish answers 202 json" "$(contains "$reply" '"delivered":1'; echo $?)"
wait "$curl_pid" || true
pushed=$(cat "$stream_out"); rm -f "$stream_out"
pushed_id=$(sed -n 's/.*"id":"\([0-9]*-[0-9]*\)".*/\1/p' <<<"$reply")
check "the reply's id is ms-seq ($pushed_id)" "$([ -n "$pushed_id" ]; echo $?)"
check "pushed event arrives" "$(contains "$pushed" "id: $pushed_id"$'\nevent: greeting\ndata: hello from curl\n\n'; echo $?)"

# 4. Error answers.
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$base/nope") || true
check "unknown path is 404 ($code)" "$([ "$code" = 404 ]; echo $?)"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X DELETE "$base/sse/x") || true
check "DELETE on a stream is 405 ($code)" "$([ "$code" = 405 ]; echo $?)"

if [ "$failed" -gt 0 ]; then
  err "server log:"; cat "$log" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
