# shellcheck shell=bash disable=SC2034 # the variables set here are read by the scripts that source it
# Shared helpers for the shell client checks, and for scripts/cluster.sh and the benchmarks; source
# it, do not run it. Uses $SSE_URL/$SSE_LOG from scripts/clients.sh, or starts its own server
# (start_server_if_needed).

CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$CLIENTS_DIR/../.." && pwd)
SSE_BIN=${SSE_BIN:-$ROOT/target/release/sse-server}
# Small interval so frames come quickly; small retry so reconnect checks stay short.
SSE_FLAGS=${SSE_FLAGS:---port 0 --interval 200ms --retry 500ms}
export LC_ALL=C # EPOCHREALTIME and printf %f use "." as the decimal point

PASSED=0
FAILED=0
SERVER_PID=""

err() { printf '%s\n' "$*" >&2; }
pass() { PASSED=$((PASSED + 1)); printf 'ok   %s\n' "$*"; }
fail() { FAILED=$((FAILED + 1)); printf 'FAIL %s\n' "$*"; }
# check NAME COMMAND...: pass if the command succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# Conditions for check ([[ ]] is syntax, so it cannot be passed as a command).
has() { [[ $1 == *"$2"* ]]; }
lacks() { [[ $1 != *"$2"* ]]; }
matches() { [[ $1 =~ $2 ]]; }

# start_server_if_needed: reuse $SSE_URL if set, else start the built binary on a free port.
start_server_if_needed() {
  if [[ -n ${SSE_URL:-} ]]; then return 0; fi
  if [[ ! -x $SSE_BIN ]]; then
    (cd "$ROOT" && cargo build --release --quiet) || { err "cargo build --release failed"; return 1; }
  fi
  SSE_LOG=$(mktemp -t sse-server-log.XXXXXX)
  # shellcheck disable=SC2086 # SSE_FLAGS is a list of flags
  "$SSE_BIN" $SSE_FLAGS >"$SSE_LOG" 2>&1 &
  SERVER_PID=$!
  local port
  port=$(wait_for_line "$SSE_LOG" 'listening on http://' 10) || {
    err "server did not print 'listening on' within 10 s"; cat "$SSE_LOG" >&2; return 1; }
  SSE_URL=${port#*listening on }
  SSE_URL=${SSE_URL%%[[:space:]]*}
  export SSE_URL SSE_LOG
}

# stop_server: kill the server this script started (if any) and remove our temporary files.
stop_server() {
  if [[ -n $SERVER_PID ]]; then
    kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; rm -f "$SSE_LOG"
  fi
}

# wait_for_line FILE FIXED_STRING SECONDS [PID]: print the first matching line once it appears;
# fail after SECONDS, or as soon as process PID (the one writing FILE) has ended.
wait_for_line() {
  local file=$1 needle=$2 deadline=$((SECONDS + $3)) pid=${4:-} line
  while ((SECONDS <= deadline)); do
    if line=$(grep -F -m1 -- "$needle" "$file" 2>/dev/null); then printf '%s\n' "$line"; return 0; fi
    [[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# cpu_ticks PID: the process's user + system CPU time, in clock ticks (/proc, Linux).
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# result_field RESULT_LINE KEY: the value of KEY=… in a load generator's RESULT line.
result_field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# stream_with_times URL OUT SECONDS [CURL_ARGS...]: in the background, read an event stream
# for SECONDS and write one "EPOCHREALTIME<TAB>line" row per received line to OUT.
# curl -N disables curl's buffering; bash writes each row as soon as the line is read.
stream_with_times() {
  local url=$1 out=$2 secs=$3; shift 3
  : >"$out"
  { curl -s -N --max-time "$secs" "$@" "$url" || true; } |
    while IFS= read -r line; do printf '%s\t%s\n' "$EPOCHREALTIME" "$line"; done >"$out" &
  STREAM_PID=$! # the reader; it ends when curl does
}

# publish PATH BODY: POST BODY to the server over bash's own /dev/tcp socket, so that
# PUBLISH_SENT_AT (EPOCHREALTIME) is taken right before the request is written, with no process
# start-up in between. Sets PUBLISH_STATUS, PUBLISH_BODY, PUBLISH_ID. (curl -d is checked too.)
publish() {
  local path=$1 body=$2 hostport=${SSE_URL#http://} fd reply=""
  exec {fd}<>"/dev/tcp/${hostport%:*}/${hostport##*:}" || { PUBLISH_STATUS=000; PUBLISH_BODY=""; PUBLISH_ID=""; return 0; }
  PUBLISH_SENT_AT=$EPOCHREALTIME
  # LC_ALL=C: ${#body} counts bytes, which is what Content-Length wants.
  printf 'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s' "$path" "$hostport" "${#body}" "$body" >&"$fd"
  # The server closes after a plain reply, so read to end of file (or 5 s).
  read -r -d '' -t 5 -u "$fd" reply || true
  exec {fd}<&-
  PUBLISH_STATUS=$(sed -n '1s/^HTTP\/1.1 \([0-9]*\).*/\1/p' <<<"$reply")
  PUBLISH_BODY=${reply#*$'\r\n\r\n'}
  PUBLISH_ID=$(sed -n 's/.*"id":"\([0-9]*-[0-9]*\)".*/\1/p' <<<"$PUBLISH_BODY")
}

# arrival_ms OUT LINE SINCE SECONDS: wait for LINE in a stream_with_times file, print the
# milliseconds from SINCE (EPOCHREALTIME) to its arrival.
arrival_ms() {
  local out=$1 want=$2 since=$3 deadline=$((SECONDS + $4)) at
  while ((SECONDS <= deadline)); do
    at=$(awk -F'\t' -v w="$want" '$2 == w { print $1; exit }' "$out")
    if [[ -n $at ]]; then awk -v a="$at" -v b="$since" 'BEGIN { printf "%.1f\n", (a - b) * 1000 }'; return 0; fi
    sleep 0.01
  done
  return 1
}

# close_logged_within USER SINCE_LINE SECONDS: true once the server log, after line number
# SINCE_LINE, shows `close user="USER"`.
close_logged_within() {
  local user=$1 since=$2 deadline=$((SECONDS + $3))
  while ((SECONDS <= deadline)); do
    if awk -v n="$since" -v s="close user=\"$user\"" 'NR > n && index($0, s) { f = 1 } END { exit !f }' "$SSE_LOG"; then
      return 0
    fi
    sleep 0.02
  done
  return 1
}

log_lines() { wc -l <"$SSE_LOG"; }

# summary CLIENT KEY=VALUE...: the one-line result scripts/clients.sh turns into a table.
summary() { printf 'RESULT client=%s %s\n' "$1" "${*:2}"; }

finish() {
  if ((FAILED > 0)) && [[ -n ${SSE_LOG:-} && -n $SERVER_PID ]]; then
    err "--- server log ---"; tail -n 40 "$SSE_LOG" >&2
  fi
  echo "$PASSED passed, $FAILED failed"
  ((FAILED == 0))
}
