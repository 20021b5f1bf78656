#!/usr/bin/env bash
# curl through nginx running scripts/nginx/sse-server.conf: frames pass at once, replay, close.
# Usage: scripts/clients/nginx.sh   (uses $SSE_URL/$SSE_LOG if set, else starts target/release/sse-server)
set -euo pipefail
# shellcheck source=scripts/clients/lib.sh
source "$(dirname "$0")/lib.sh"

NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
NGINX_PID=""
stop_all() {
  if [[ -n $NGINX_PID ]]; then kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; fi
  stop_server
  rm -rf "${WORK:-}"
}
trap stop_all EXIT
if [[ ! -x $NGINX ]]; then
  fail "nginx not found: run scripts/clients/install.sh (apt-get install -y nginx)"; finish
fi
start_server_if_needed || { fail "server start"; finish; }
WORK=$(mktemp -d -t sse-nginx.XXXXXX)
user="nginx-$$"
connected=FAIL frames=FAIL pushed=FAIL reconnect=FAIL closed=FAIL first_byte=n/a latency=n/a

upstream=${SSE_URL##*:}
port=$(free_port)
port_xab=$(free_port)
port_buffered=$(free_port)

# 1. The documented example with its ports replaced, plus a copy without `proxy_buffering off`
# to show that the server's X-Accel-Buffering: no header is enough on its own.
example="$ROOT/scripts/nginx/sse-server.conf"
sed -e "s/server 127.0.0.1:3000;/server 127.0.0.1:$upstream;/" -e "s/listen 8080;/listen 127.0.0.1:$port;/" \
  "$example" >"$WORK/sse-server.conf"
sed -e 's/sse_server/sse_server_xab/g' -e '/proxy_buffering off;/d' -e "s/listen 127.0.0.1:$port;/listen 127.0.0.1:$port_xab;/" \
  "$WORK/sse-server.conf" >"$WORK/sse-server-xab.conf"
# And a control that proves the timing check can fail: buffering forced on, header ignored.
sed -e 's/sse_server/sse_server_buffered/g' -e 's/proxy_buffering off;/proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;/' \
  -e "s/listen 127.0.0.1:$port;/listen 127.0.0.1:$port_buffered;/" "$WORK/sse-server.conf" >"$WORK/sse-server-buffered.conf"
check "the example's upstream and listen lines were found and replaced" \
  test "$(grep -cE "127.0.0.1:($upstream|$port);" "$WORK/sse-server.conf")" -eq 2
mkdir -p "$WORK"/{client_body,proxy,fastcgi,uwsgi,scgi}
# A test harness around it: foreground, one process (so the trap's PID is all of nginx),
# every path inside $WORK so nothing touches /etc/nginx or /var/log/nginx.
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
pid $WORK/nginx.pid;
error_log $WORK/error.log info;
events { worker_connections 256; }
http {
    access_log $WORK/access.log;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    include $WORK/sse-server.conf;
    include $WORK/sse-server-xab.conf;
    include $WORK/sse-server-buffered.conf;
}
EOF
"$NGINX" -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" &
NGINX_PID=$!
via="http://127.0.0.1:$port"
up=""
for _ in $(seq 100); do
  kill -0 "$NGINX_PID" 2>/dev/null || break
  up=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$via/users" || true)
  [[ $up == 200 ]] && break
  sleep 0.05
done
if [[ $up != 200 ]]; then
  fail "nginx answers GET /users with 200 within 5 s (got '$up')"; cat "$WORK/error.log" >&2; finish
fi
pass "nginx is up on $via, proxying to $SSE_URL"

# 2. The stream through nginx: status, type, first bytes, frames.
since=$(log_lines)
rc=0; out=$(curl -s -N -D - -w '\n%{time_starttransfer}' --max-time 1.5 "$via/sse/$user") || rc=$?
check "through nginx: the stream ends only by our --max-time (curl exit $rc)" test "$rc" -eq 28
first_byte=$(awk -v s="${out##*$'\n'}" 'BEGIN { printf "%.1f", s * 1000 }')
out=${out%$'\n'*}
head=${out%%$'\r\n\r\n'*}$'\r'
body=${out#*$'\r\n\r\n'}
check "through nginx: 200 and text/event-stream" \
  matches "$head" $'^HTTP/1.1 200 OK\r\n(.*\r\n)*[Cc]ontent-[Tt]ype: text/event-stream; charset=utf-8\r'
check "through nginx: nginx consumed X-Accel-Buffering (not forwarded)" lacks "${head,,}" "x-accel-buffering"
check "through nginx: body starts with ':' then 'retry: MS'" matches "$body" $'^:\n\nretry: [0-9]+\n\n'
nframes=$(grep -c '^data: {"userId"' <<<"$body" || true)
check "through nginx: at least 4 timer frames in 1.5 s (got $nframes)" test "$nframes" -ge 4
[[ $head == "HTTP/1.1 200 OK"* && $body == $':\n\n'* ]] && connected=ok

# 3. Close: curl left (--max-time); nginx must close its upstream and the server must notice.
if [[ -n ${SSE_LOG:-} ]] && close_logged_within "$user" "$since" 2; then
  pass "server logged close user=\"$user\" within 2 s of the client leaving nginx"; closed=ok
else
  fail "server logged close user=\"$user\" within 2 s of the client leaving nginx"
fi

# frame_lag_ms FILE: the largest delay between a timer frame's "time" (when the server wrote it)
# and its arrival here. Same machine, same clock. Buffering would show up as hundreds of ms.
frame_lag_ms() {
  awk -F'\t' 'match($2, /"time":[0-9]+/) { lag = $1 * 1000 - substr($2, RSTART + 7, RLENGTH - 7); n++
      if (lag > max) max = lag } END { if (n < 4) printf "none (%d frames arrived)\n", n; else printf "%.1f ms over %d frames\n", max, n }' "$1"
}

# 4. Frames and pushes through nginx arrive within a few ms. Publish straight to the server.
stream_with_times "$via/sse/$user" "$WORK/live" 3
wait_for_line "$WORK/live" $'\t:' 3 >/dev/null || fail "stream through nginx did not start"
lags=()
first_id=""
for i in 1 2 3 4 5; do
  publish "/send/$user?event=chat" "push $i"
  ((i == 1)) && first_id=$PUBLISH_ID # ids are ms-seq strings: remember the first, no arithmetic
  lag=$(arrival_ms "$WORK/live" "data: push $i" "$PUBLISH_SENT_AT" 2) || lag=""
  [[ -n $lag ]] && lags+=("$lag")
  sleep 0.1
done
wait "$STREAM_PID" || true
check "through nginx: all 5 pushes arrived (${#lags[@]})" test "${#lags[@]}" -eq 5
max_push=$(printf '%s\n' "${lags[@]:-9999}" | sort -n | tail -1)
check "through nginx: push to arrival at most 250 ms (${lags[*]:-none} ms)" awk -v m="$max_push" 'BEGIN { exit !(m <= 250) }'
lag=$(frame_lag_ms "$WORK/live")
check "through nginx: timer frames arrive within 250 ms of their time stamp (max lag: $lag)" \
  awk -v m="${lag%% *}" 'BEGIN { exit !(m != "none" && m <= 250) }'
((${#lags[@]} == 5)) && pushed=ok
[[ ${lag%% *} != none ]] && awk -v m="${lag%% *}" 'BEGIN { exit !(m <= 250) }' && frames=ok
latency=${lags[0]:-n/a}

# Same through the copy without proxy_buffering off: X-Accel-Buffering: no alone must do.
stream_with_times "http://127.0.0.1:$port_xab/sse/$user-xab" "$WORK/xab" 1.5
wait "$STREAM_PID" || true
lag=$(frame_lag_ms "$WORK/xab")
check "without proxy_buffering off, X-Accel-Buffering alone keeps frames prompt (max lag: $lag)" \
  awk -v m="${lag%% *}" 'BEGIN { exit !(m != "none" && m <= 250) }'
stream_with_times "http://127.0.0.1:$port_buffered/sse/$user-buffered" "$WORK/buffered" 1.5
wait "$STREAM_PID" || true
lag=$(frame_lag_ms "$WORK/buffered")
check "control: with buffering forced on, frames are held back (max lag: $lag)" \
  awk -v m="${lag%% *}" 'BEGIN { exit !(m == "none" || m > 1000) }'

# 5. Publish through nginx (allowed from 127.0.0.1), and replay with Last-Event-ID through nginx.
status=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 2 -d "via nginx" "$via/send/$user?event=chat")
check "POST /send through nginx is 202 ($status)" test "$status" = 202
replay=$(curl -s -N --max-time 1 -H "Last-Event-ID: $first_id" "$via/sse/$user") || true # exit 28: our --max-time ended it
check "Last-Event-ID: $first_id through nginx replays push 2..5 and 'via nginx'" \
  has "$replay" $'data: push 2\n\n'
check "... and not push 1" lacks "$replay" "push 1"
has "$replay" "data: via nginx" && lacks "$replay" "push 1" && reconnect=ok

# 6. sse-server listen through nginx. nginx does not know the stream's length, so it sends it to
# an HTTP/1.1 client chunked; listen decodes the chunks before its event-stream parser.
raw_head=$(curl -s -N --raw -D - -o /dev/null --max-time 1 "$via/sse/$user-raw" || true) # exit 28 expected
check "through nginx the stream is Transfer-Encoding: chunked" grep -qix $'transfer-encoding: chunked\r' <<<"$raw_head"
rc=0
out=$("$SSE_BIN" listen "$via/sse/$user-listen" --count 3 --timeout 5s --format data 2>"$WORK/listen.err") || rc=$?
listen_frames=$(grep -c "^{\"userId\":\"$user-listen\"," <<<"$out" || true)
check "sse-server listen through nginx: 3 timer frames, exit 0 (exit $rc, $listen_frames frames)" \
  test "$rc" -eq 0 -a "$listen_frames" -eq 3
"$SSE_BIN" listen "$via/sse/$user-listen" --event chat --count 1 --format data --timeout 5s \
  >"$WORK/listen-chat.out" 2>"$WORK/listen-chat.err" &
listen_pid=$!
wait_for_line "$WORK/listen-chat.err" "listen: connected" 5 >/dev/null || fail "listen connected through nginx"
reply=$("$SSE_BIN" publish "$via" --to "$user-listen" --event chat "via nginx, both ways") || true
check "sse-server publish through nginx ($reply)" matches "$reply" '"delivered":1'
rc=0; wait "$listen_pid" || rc=$?
check "sse-server listen through nginx got the pushed event (exit $rc)" \
  test "$rc" -eq 0 -a "$(cat "$WORK/listen-chat.out")" = "via nginx, both ways"
listen_ok=FAIL
[[ $listen_frames == 3 && $(cat "$WORK/listen-chat.out") == "via nginx, both ways" ]] && listen_ok=ok
summary listen-via-nginx connected=$listen_ok frames=$listen_ok pushed=$listen_ok reconnect=n/a close=n/a

summary nginx connected=$connected frames=$frames pushed=$pushed reconnect=$reconnect \
  close="$closed" first_byte_ms="$first_byte" latency_ms="$latency"
if ((FAILED > 0)) || [[ -n ${SHOW_NGINX_LOG:-} ]]; then err "--- nginx error.log ---"; tail -n 40 "$WORK/error.log" >&2; fi
finish
