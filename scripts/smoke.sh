#!/usr/bin/env bash
# Smoke test: build, start the server on a free port, compare the stream's first bytes with
# scripts/golden/stream.txt (curl, raw bytes), check headers, frames, a pushed message (sse-server
# publish/listen) and the close log line. Usage: scripts/smoke.sh [--update-golden]
# (SSE_SERVER_BIN=path skips the build)
set -euo pipefail

cd "$(dirname "$0")/.."
unset SSE_PUBLISH_TOKEN # publishing from loopback needs no token
err() { echo "smoke: $*" >&2; }

command -v curl >/dev/null || { err "curl is required"; echo "0 passed, 1 failed"; exit 1; }

update_golden=false
case "${1:-}" in
  --update-golden) update_golden=true ;;
  "") ;;
  *) err "unknown argument: $1 (usage: scripts/smoke.sh [--update-golden])"; exit 2 ;;
esac
golden=scripts/golden/stream.txt

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
raw=$(mktemp)
transcript=$(mktemp)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -f "$log" "$log.listen" "$raw" "$transcript"
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

# 0. The golden transcript: what `curl -sN -i` receives, byte for byte, up to the second timer
#    frame, against scripts/golden/stream.txt. It runs first, while this is the only stream, so
#    "users":1 is exact. Only what must vary is replaced by a placeholder: the Date value (which
#    must still be an IMF-fixdate, RFC 9110 §5.6.7), the retry: jitter, the event id (which
#    must still be `ms-seq`) and the frame's millisecond time. Each CR of the head is shown as a visible `\r`
#    so the file stays plain text and a diff shows it.
rc=0
curl -sS -N -i --max-time 1.2 "$base/sse/golden" >"$raw" 2>/dev/null || rc=$?
sed -E \
  -e 's/\r$/\\r/' \
  -e 's/^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT\\r$/Date: <date>\\r/' \
  -e 's/^retry: [0-9]+$/retry: <ms>/' \
  -e 's/^id: [0-9]{13}-[0-9]+$/id: <ms>-<seq>/' \
  -e 's/"time":[0-9]{13}\}$/"time":<ms>}/' \
  "$raw" | awk '{ print } /^data: / { frames++ } frames == 2 && /^$/ { exit }' >"$transcript"
if [ "$update_golden" = true ]; then
  mkdir -p "$(dirname "$golden")"
  cp "$transcript" "$golden"
  echo "wrote $golden"
fi
if diff -u "$golden" "$transcript" >&2; then golden_rc=0; else golden_rc=1; err "the stream's first bytes differ from $golden (- expected, + received); if the change is meant, run scripts/smoke.sh --update-golden and commit the file"; fi
check "curl got the head and two frames within 1.2 s (exit $rc)" "$([ "$rc" -eq 28 ]; echo $?)"
check "first bytes match $golden" "$golden_rc"

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

# 3. A message published with `sse-server publish` arrives at `sse-server listen`, which exits 0
# once it has the one event it waits for (or 1 after 5 s).
"$binary" listen "$base/sse/pushy" --event greeting --count 1 --timeout 5s >"$log.listen" 2>/dev/null &
listen_pid=$!
for _ in $(seq 1 40); do grep -q 'open user="pushy"' "$log" && break; sleep 0.05; done
reply=$("$binary" publish "$base" --to pushy --event greeting 'hello from publish') || true
rc=0; wait "$listen_pid" || rc=$?
check "publish prints the 202 reply" "$(contains "$reply" '"delivered":1}'; echo $?)"
pushed_id=$(sed -n 's/.*"id":"\([0-9]*-[0-9]*\)".*/\1/p' <<<"$reply")
check "the reply's id is ms-seq ($pushed_id)" "$([ -n "$pushed_id" ]; echo $?)"
check "listen exits 0 with the pushed event and its id" \
  "$([ "$rc" -eq 0 ] && contains "$(cat "$log.listen")" '{"id":"'"$pushed_id"'","event":"greeting","data":"hello from publish"}'; echo $?)"
check "curl -d publishes too" "$(contains "$(curl -sS --max-time 5 -d x "$base/broadcast")" '"delivered":'; echo $?)"

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
