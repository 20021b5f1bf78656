#!/usr/bin/env bash
# sse-server listen and publish as clients: against the server, then across a restart of a server
# on the same port (reconnect, Last-Event-ID, replay). Usage: scripts/clients/listen.sh
set -euo pipefail
# shellcheck source=scripts/clients/lib.sh
source "$(dirname "$0")/lib.sh"

WORK=$(mktemp -d -t sse-listen.XXXXXX)
OWN_PID=""
stop_all() {
  if [[ -n $OWN_PID ]]; then kill "$OWN_PID" 2>/dev/null || true; wait "$OWN_PID" 2>/dev/null || true; fi
  stop_server
  rm -rf "$WORK"
}
trap stop_all EXIT
start_server_if_needed || { fail "server start"; finish; }
user="listen-$$"
connected=FAIL frames=FAIL pushed=FAIL reconnect=FAIL

# 1. Timer frames: --count 3 prints three JSON lines and exits 0; stderr says "connected".
rc=0
out=$("$SSE_BIN" listen "$SSE_URL/sse/$user" --count 3 --timeout 5s 2>"$WORK/frames.err") || rc=$?
check "listen --count 3 exits 0 (exit $rc)" test "$rc" -eq 0
# (the id is the one the stream's id-only block set: timer frames have none of their own)
json_frames=$(grep -cF '","event":"message","data":"{\"userId\":\"'"$user"'\",' <<<"$out" || true)
check "three JSON lines, one per timer frame (got $json_frames)" test "$json_frames" -eq 3
check "one status line on stderr: connected" test "$(grep -c '^listen: connected to ' "$WORK/frames.err")" -eq 1
((json_frames == 3)) && frames=ok && connected=ok

# 2. publish reads stdin; listen --event filters and --format data prints the data alone.
"$SSE_BIN" listen "$SSE_URL/sse/$user" --event chat --count 1 --format data --timeout 5s \
  >"$WORK/chat.out" 2>"$WORK/chat.err" &
listen_pid=$!
wait_for_line "$WORK/chat.err" "listen: connected" 5 >/dev/null || fail "listen connected for the chat event"
reply=$(printf 'hello\nworld\n' | "$SSE_BIN" publish "$SSE_URL" --to "$user" --event chat -) || true
check "publish - prints the reply ($reply)" matches "$reply" '^\{"id":.*"delivered":1\}$'
rc=0; wait "$listen_pid" || rc=$?
check "listen --event chat --count 1 exits 0 (exit $rc)" test "$rc" -eq 0
check "the data arrived, both lines, final line break dropped" test "$(cat "$WORK/chat.out")" = $'hello\nworld'
[[ $rc == 0 && $(cat "$WORK/chat.out") == $'hello\nworld' ]] && pushed=ok

# 3. Across a restart: a server of our own, killed and started again on the same port. listen
# reconnects after retry: and sends the id it last saw; the new server, which knows the id is from
# an earlier run, sends a gap and then everything it holds.
"$SSE_BIN" --port 0 --interval 0 --retry 1s >"$WORK/first.log" 2>&1 &
OWN_PID=$!
own=$(wait_for_line "$WORK/first.log" 'listening on http://' 10) || { fail "own server started"; finish; }
own=${own#listening on }
"$SSE_BIN" listen "$own/sse/restart" --count 6 --timeout 15s >"$WORK/restart.out" 2>"$WORK/restart.err" &
listen_pid=$!
wait_for_line "$WORK/restart.err" "listen: connected" 5 >/dev/null || fail "listen connected before the restart"
"$SSE_BIN" publish "$own" --to restart one >/dev/null || fail "publish one"
"$SSE_BIN" publish "$own" --to restart two >/dev/null || fail "publish two"
wait_for_line "$WORK/restart.out" '"data":"two"' 5 >/dev/null || fail "two arrived before the restart"
kill "$OWN_PID"; wait "$OWN_PID" 2>/dev/null || true
"$SSE_BIN" --port "${own##*:}" --interval 0 >"$WORK/second.log" 2>&1 &
OWN_PID=$!
wait_for_line "$WORK/second.log" 'listening on http://' 10 >/dev/null || fail "restarted on the same port"
# Published before listen is back (it waits 1 s or more): only a replay can deliver "three".
for data in three-a three-b three; do "$SSE_BIN" publish "$own" --to restart "$data" >/dev/null || true; done
rc=0; wait "$listen_pid" || rc=$?
check "listen across the restart exits 0 after 6 events (exit $rc)" test "$rc" -eq 0
last_id=$(sed -n '2s/^{"id":"\([^"]*\)".*/\1/p' "$WORK/restart.out")
check "it reconnected with Last-Event-ID: $last_id (the id of 'two')" \
  grep -qF "connected to $own/sse/restart with Last-Event-ID: $last_id" "$WORK/restart.err"
gap=$(sed -n '3p' "$WORK/restart.out")
check "the new run answered the old id with a gap ($gap)" has "$gap" '"event":"gap","data":"{\"after\":\"'"$last_id"'\"'
third=$(sed -n '6p' "$WORK/restart.out")
check "the replay brought the last event published while it was away ($third)" has "$third" '"data":"three"}'
grep -qF "with Last-Event-ID: $last_id" "$WORK/restart.err" && [[ $third == *'"data":"three"}' ]] && reconnect=ok
if ((FAILED > 0)); then
  err "--- listen stderr across the restart ---"; cat "$WORK/restart.err" >&2
fi

summary listen connected=$connected frames=$frames pushed=$pushed reconnect=$reconnect close=n/a
finish
