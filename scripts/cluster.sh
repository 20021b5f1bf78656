#!/usr/bin/env bash
# Cluster mode on one machine: redis-server, two sse-server instances sharing it, nginx round-robin
# in front (scripts/nginx/cluster.conf). Usage: scripts/cluster.sh [--port 8080] [--persist] [--check]; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/clients/lib.sh
source scripts/clients/lib.sh # free_port, wait_for_line, check, has
err() { printf 'cluster: %s\n' "$*" >&2; }

PORT=8080
PERSIST=no
CHECK=no
while (($# > 0)); do
  case $1 in
    --port) PORT=${2:?--port needs a value}; shift 2 ;;
    --persist) PERSIST=yes; shift ;; # Redis writes an append-only file in the work directory
    --check) CHECK=yes; shift ;;     # instead of running until Ctrl-C: check the failover, then stop
    -h | --help) sed -n 2,3p "$0"; exit 0 ;;
    *) err "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
done

REDIS_SERVER=$(command -v redis-server || true)
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -n $REDIS_SERVER ]] || { err "redis-server not found: apt-get install redis-server"; exit 1; }
[[ -x $NGINX ]] || { err "nginx not found: apt-get install nginx"; exit 1; }
command -v python3 >/dev/null || { err "python3 is needed to pick free ports"; exit 1; }

binary=${SSE_SERVER_BIN:-}
if [[ -z $binary ]]; then
  cargo build --release --quiet
  binary=target/release/sse-server
fi

WORK=$(mktemp -d -t sse-cluster.XXXXXX)
PIDS=() # everything this script started, stopped in reverse order
stop_all() {
  local index
  for ((index = ${#PIDS[@]} - 1; index >= 0; index--)); do
    kill "${PIDS[index]}" 2>/dev/null || true
    wait "${PIDS[index]}" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap stop_all EXIT
trap 'echo; err "stopping"; exit 0' INT TERM

if [[ $PORT == 0 ]]; then PORT=$(free_port); fi # --port 0: any free port (CI)


# 1. Redis on a free port, in its own directory; no persistence unless --persist.
redis_port=$(free_port)
mkdir -p "$WORK/redis"
persistence=(--save '' --appendonly no)
[[ $PERSIST == yes ]] && persistence=(--save '' --appendonly yes)
"$REDIS_SERVER" --port "$redis_port" --bind 127.0.0.1 "${persistence[@]}" \
  --dir "$WORK/redis" --logfile "$WORK/redis.log" &
PIDS+=($!)
wait_for_line "$WORK/redis.log" "Ready to accept connections" 10 "${PIDS[-1]}" >/dev/null ||
  { err "redis-server did not start"; cat "$WORK/redis.log" >&2; exit 1; }
redis_url="redis://127.0.0.1:$redis_port"

# 2. Two instances on free ports, both on the same Redis ($SSE_SERVER_FLAGS: more flags for both).
read -r -a extra_flags <<<"${SSE_SERVER_FLAGS:-}"
ports=()
for name in a b; do
  "$binary" --port 0 --redis "$redis_url" "${extra_flags[@]}" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  line=$(wait_for_line "$WORK/$name.log" "listening on http://" 15 "${PIDS[-1]}") ||
    { err "instance $name did not start"; cat "$WORK/$name.log" >&2; exit 1; }
  ports+=("${line##*:}")
done

# 3. nginx with the documented example, its two upstream ports and listen port replaced; a
# foreground single process (so its PID is all of nginx) with every path inside $WORK.
sed -e "s/server 127.0.0.1:3001 /server 127.0.0.1:${ports[0]} /" \
  -e "s/server 127.0.0.1:3002 /server 127.0.0.1:${ports[1]} /" \
  -e "s/listen 8080;/listen 127.0.0.1:$PORT;/" scripts/nginx/cluster.conf >"$WORK/cluster.conf"
if [[ $(grep -cE "127.0.0.1:(${ports[0]}|${ports[1]}|$PORT)[ ;]" "$WORK/cluster.conf") != 3 ]]; then
  err "scripts/nginx/cluster.conf no longer has the lines this script replaces"; exit 1
fi
mkdir -p "$WORK"/{client_body,proxy,fastcgi,uwsgi,scgi}
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log info;
events { worker_connections 4096; }
http {
    access_log $WORK/nginx-access.log;
    client_body_temp_path $WORK/client_body;
    proxy_temp_path $WORK/proxy;
    fastcgi_temp_path $WORK/fastcgi;
    uwsgi_temp_path $WORK/uwsgi;
    scgi_temp_path $WORK/scgi;
    include $WORK/cluster.conf;
}
EOF
"$NGINX" -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf" &
PIDS+=($!)
url="http://127.0.0.1:$PORT"
up=""
for _ in $(seq 100); do
  kill -0 "${PIDS[-1]}" 2>/dev/null || break
  up=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url/users" || true)
  [[ $up == 200 ]] && break
  sleep 0.05
done
[[ $up == 200 ]] || { err "nginx did not answer on $url (got '$up')"; cat "$WORK/nginx-error.log" >&2; exit 1; }

cat <<EOF
cluster is up: $url/   (open it in a browser; Ctrl-C stops everything)
  redis       $redis_url   pid ${PIDS[0]}   log $WORK/redis.log
  instance a  http://127.0.0.1:${ports[0]}   pid ${PIDS[1]}   log $WORK/a.log
  instance b  http://127.0.0.1:${ports[1]}   pid ${PIDS[2]}   log $WORK/b.log
  nginx       $url   pid ${PIDS[3]}
try:
  curl -N $url/sse/alice
  curl -d hello $url/broadcast
  redis-cli -p $redis_port XADD sse:events '*' target all event message data 'from redis-cli'
  kill -9 ${PIDS[1]}   # the browser reconnects to instance b and misses nothing
EOF
if [[ $CHECK == yes ]]; then
  # The headline, through nginx: a stream gets a publish; the instance serving it is killed; the
  # reconnection (with its Last-Event-ID) lands on the other one and gets what was published meanwhile.
  user="check-$$"
  first=$(curl -s --max-time 2 -d "one" "$url/send/$user" || true)
  first_id=$(sed -n 's/.*"id":"\([0-9-]*\)".*/\1/p' <<<"$first")
  check "a publish through nginx is 202 with a Redis id ($first)" test -n "$first_id"
  rc=0; out=$(curl -sN --max-time 1 -H "Last-Event-ID: 0-0" "$url/sse/$user") || rc=$?
  check "the stream ends only by our --max-time (curl exit $rc)" test "$rc" -eq 28
  check "the stream replays it" has "$out" $'id: '"$first_id"$'\ndata: one\n\n'
  serving=$(grep -l "open user=\"$user\"" "$WORK/a.log" "$WORK/b.log" | tail -n 1)
  victim=${PIDS[1]}; [[ $serving == "$WORK/b.log" ]] && victim=${PIDS[2]}
  { kill -9 "$victim"; wait "$victim"; } 2>/dev/null || true
  second=$(curl -s --max-time 2 -d "two" "$url/send/$user" || true)
  second_id=$(sed -n 's/.*"id":"\([0-9-]*\)".*/\1/p' <<<"$second")
  check "with one instance killed, a publish through nginx is still 202 ($second)" test -n "$second_id"
  rc=0; out=$(curl -sN --max-time 1 -H "Last-Event-ID: $first_id" "$url/sse/$user") || rc=$?
  check "the reconnection lands on the live instance" test "$rc" -eq 28
  check "... and gets what was published meanwhile, once" \
    test "$(grep -c "^data: two$" <<<"$out")" -eq 1
  check "... and not what it had" test "$(grep -c "^data: one$" <<<"$out")" -eq 0
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0)) && exit 0
  for name in a b; do err "--- $name.log ---"; tail -n 20 "$WORK/$name.log" >&2; done
  exit 1
fi

# Run until Ctrl-C, or until nginx or Redis ends (an instance may be killed for the demo).
while kill -0 "${PIDS[0]}" 2>/dev/null && kill -0 "${PIDS[3]}" 2>/dev/null; do sleep 1; done
err "redis-server or nginx ended; stopping the rest"
exit 1
