#!/usr/bin/env bash
# curl as an SSE client: exact status line, headers and first bytes; publish with curl -d; replay.
# Usage: scripts/clients/curl.sh   (uses $SSE_URL/$SSE_LOG if set, else starts target/release/sse-server)
set -euo pipefail
# shellcheck source=scripts/clients/lib.sh
source "$(dirname "$0")/lib.sh"

trap stop_server EXIT
start_server_if_needed || { fail "server start"; finish; }
WORK=$(mktemp -d -t sse-curl.XXXXXX)
trap 'stop_server; rm -rf "$WORK"' EXIT
user="curl-$$"
connected=FAIL frames=FAIL pushed=FAIL reconnect=FAIL closed=FAIL first_byte=n/a latency=n/a

# 1. One short session: -D - puts the response head on stdout before the body. The stream never
# ends by itself, so --max-time ends it and exit code 28 (timeout) is the normal outcome.
since=$(log_lines)
rc=0
out=$(curl -s -N -D - -w '\n%{time_starttransfer}' --max-time 1.5 "$SSE_URL/sse/$user") || rc=$?
first_byte=$(awk -v s="${out##*$'\n'}" 'BEGIN { printf "%.1f", s * 1000 }')
out=${out%$'\n'*}
check "stream ends only by our --max-time (curl exit $rc)" test "$rc" -eq 28
head=${out%%$'\r\n\r\n'*}$'\r'
body=${out#*$'\r\n\r\n'}
check "status line is 'HTTP/1.1 200 OK'" test "${head%%$'\r'*}" = "HTTP/1.1 200 OK"
for header in "Content-Type: text/event-stream; charset=utf-8" "Cache-Control: no-cache, no-transform" \
  "Connection: keep-alive" "X-Accel-Buffering: no"; do
  check "header '$header'" grep -qixF -- "$header"$'\r' <<<"$head"
done
check "body starts with ':' then 'retry: MS'" matches "$body" $'^:\n\nretry: [0-9]+\n\n'
[[ $head == "HTTP/1.1 200 OK"* && $body == $':\n\n'* ]] && connected=ok
# Timer frames: one data line each, JSON with our userId, times in order.
mapfile -t times < <(sed -n "s/^data: {\"userId\":\"$user\",\"users\":[0-9]*,\"time\":\([0-9]*\)}\$/\1/p" <<<"$body")
check "at least 4 timer frames in 1.5 s (got ${#times[@]})" test "${#times[@]}" -ge 4
# shellcheck disable=SC2016 # the script is for the inner bash
check "timer frame times increase" bash -c 'p=0; for t; do ((t > p)) || exit 1; p=$t; done' _ "${times[@]:-0}"
((${#times[@]} >= 4)) && frames=ok
if [[ -n ${SSE_LOG:-} ]] && close_logged_within "$user" "$since" 2; then
  pass "server logged close user=\"$user\" within 2 s of curl leaving"; closed=ok
else
  fail "server logged close user=\"$user\" within 2 s of curl leaving"
fi

# 2. Publish with curl -d while a stream is open, then time a raw publish to its arrival.
stream_with_times "$SSE_URL/sse/$user" "$WORK/live" 3
wait_for_line "$WORK/live" $'\t:' 3 >/dev/null || fail "live stream did not start"
reply=$(curl -sS --max-time 5 -w '\n%{http_code}' -d "hello from curl" "$SSE_URL/send/$user?event=chat" || true)
check "curl -d to /send answers 202 (${reply##*$'\n'})" test "${reply##*$'\n'}" = 202
check "the reply has an id and delivered=1 (${reply%$'\n'*})" matches "${reply%$'\n'*}" '^\{"id":"[0-9]+-[0-9]+","delivered":1\}$'
chat_id=$(sed -n 's/.*"id":"\([0-9]*-[0-9]*\)".*/\1/p' <<<"$reply")
check "the stream got it" wait_for_line "$WORK/live" $'\tdata: hello from curl' 2 >/dev/null
publish "/broadcast" $'line one\nline two'
if latency=$(arrival_ms "$WORK/live" "data: line two" "$PUBLISH_SENT_AT" 2); then
  pass "a broadcast arrived ${latency} ms after it was sent"
else
  latency=n/a; fail "a broadcast arrived"
fi
wait "$STREAM_PID" || true
live=$(cut -f2- "$WORK/live")
check "event block is 'id: $chat_id', 'event: chat', 'data: hello from curl'" \
  has "$live" $'id: '"$chat_id"$'\nevent: chat\ndata: hello from curl\n\n'
check "a two-line broadcast arrives as two data: lines without event:" \
  has "$live" $'id: '"$PUBLISH_ID"$'\ndata: line one\ndata: line two\n\n'
has "$live" $'event: chat\ndata: hello from curl' && pushed=ok

# 3. Offline: two messages, then come back with Last-Event-ID = the first one's id.
publish "/send/$user" "missed one"; first=$PUBLISH_ID
publish "/send/$user" "missed two"; second=$PUBLISH_ID
check "publish while offline delivers to nobody ($PUBLISH_BODY)" has "$PUBLISH_BODY" '"delivered":0'
replay=$(curl -s -N --max-time 1 -H "Last-Event-ID: $first" "$SSE_URL/sse/$user") || true # exit 28: our --max-time ended it
check "Last-Event-ID: $first replays id $second" has "$replay" $'id: '"$second"$'\ndata: missed two\n\n'
check "Last-Event-ID: $first does not replay id $first" lacks "$replay" "missed one"
query=$(curl -s -N --max-time 1 "$SSE_URL/sse/$user?lastEventId=$chat_id") || true # exit 28: our --max-time ended it
check "?lastEventId=$chat_id replays both missed messages in order" has "$query" "missed one"$'\n\n'"id: $second"
check "?lastEventId=$chat_id does not replay id $chat_id" lacks "$query" "hello from curl"
[[ $replay == *"missed two"* && $replay != *"missed one"* ]] && reconnect=ok

# 4. The plain replies around the stream.
check "HEAD /sse/$user is 200 with the stream headers" \
  grep -qiF "content-type: text/event-stream" <<<"$(curl -sS -I --max-time 2 "$SSE_URL/sse/$user")"
check "GET /nope is 404" test "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "$SSE_URL/nope")" = 404

summary curl connected=$connected frames=$frames pushed=$pushed reconnect=$reconnect \
  close="$closed" first_byte_ms="$first_byte" latency_ms="$latency"
finish
