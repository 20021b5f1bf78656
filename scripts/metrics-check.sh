#!/usr/bin/env bash
# Scrapes GET /metrics of a freshly built server and reads it with the real Prometheus text parser of
# the Python prometheus_client package (pinned, in a venv under target/). Usage: scripts/metrics-check.sh
# (SSE_SERVER_BIN=path skips the build; with CI=true a missing python3 or venv module is installed)
set -euo pipefail
cd "$(dirname "$0")/.."
unset SSE_PUBLISH_TOKEN # publishing from loopback needs no token
err() { echo "metrics-check: $*" >&2; }

PROMETHEUS_CLIENT_VERSION=0.26.0
VENV=target/metrics-venv

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}
setup_failed() { err "$*"; echo "0 passed, 1 failed"; exit 1; }

# 1. python3 and a venv with the pinned parser. Only under CI=true does the script install Debian
#    packages itself (python3, and python3-venv, without which `python3 -m venv` has no pip).
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
apt_install() {
  [ "${CI:-}" = "true" ] || return 1
  $SUDO apt-get update -q >&2 &&
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@" >&2
}
if ! command -v python3 >/dev/null; then
  apt_install python3 python3-venv || setup_failed "python3 is required: apt-get install python3 python3-venv"
fi
has_parser() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys
sys.exit(m.version('prometheus_client') != '$PROMETHEUS_CLIENT_VERSION')" 2>/dev/null
}
if ! has_parser; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >&2; then
    rm -rf "$VENV"
    apt_install python3-venv || setup_failed "python3 -m venv failed: apt-get install python3-venv"
    python3 -m venv "$VENV" >&2 || setup_failed "python3 -m venv failed even with python3-venv"
  fi
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "prometheus_client==$PROMETHEUS_CLIENT_VERSION" >&2 ||
    setup_failed "pip install prometheus_client==$PROMETHEUS_CLIENT_VERSION failed"
fi
command -v curl >/dev/null || apt_install curl || setup_failed "curl is required"

# 2. Build and start the server on a free loopback port; wait for its "listening on" line.
binary=${SSE_SERVER_BIN:-}
if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary=target/release/sse-server
fi
work=$(mktemp -d)
log=$work/server.log
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$binary" --port 0 --interval 100ms >"$log" &
server_pid=$!
base=""
for _ in $(seq 1 200); do
  base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$log" | head -n 1)
  [ -n "$base" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$base" ] || { err "server did not start"; cat "$log" >&2; echo "0 passed, 1 failed"; exit 1; }

# 3. One stream for 1 s (curl exits 28 when --max-time ends it), one publish to it, one 404.
stream_out=$work/stream.txt
curl -sS -N --max-time 1 "$base/sse/scraper" >"$stream_out" 2>/dev/null &
curl_pid=$!
for _ in $(seq 1 40); do grep -q 'open user="scraper"' "$log" && break; sleep 0.05; done
curl -sS --max-time 5 -d 'hello' "$base/send/scraper" >/dev/null || true
curl -s --max-time 5 -o /dev/null "$base/nope" || true
wait "$curl_pid" || true
for _ in $(seq 1 40); do grep -q 'close user="scraper"' "$log" && break; sleep 0.05; done

# 4. Scrape: headers, then the body through prometheus_client's parser.
headers=$work/headers.txt
scrape=$work/scrape.txt
rc=0
curl -sS --max-time 5 -D "$headers" -o "$scrape" "$base/metrics" || rc=$?
check "GET /metrics answers (curl exit $rc)" "$rc"
check "status 200" "$(grep -q '^HTTP/1.1 200 OK' "$headers"; echo $?)"
check "content type is the text format 0.0.4" \
  "$(grep -qi '^Content-Type: text/plain; version=0.0.4; charset=utf-8' "$headers"; echo $?)"
head_rc=0
head_out=$(curl -sS --max-time 5 -I "$base/metrics") || head_rc=$?
check "HEAD /metrics answers with the same type" \
  "$([ "$head_rc" -eq 0 ] && grep -qi 'version=0.0.4' <<<"$head_out"; echo $?)"

# The parser names a counter family without its `_total`, as the format's newer versions do.
parsed=$("$VENV/bin/python" - "$scrape" <<'PY' || true
import sys
from prometheus_client.parser import text_string_to_metric_families

def report(name, ok):
    print(("ok   " if ok else "FAIL ") + name)

try:
    families = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
except Exception as error:  # any parse error fails the check
    report(f"prometheus_client parses the scrape ({error})", False)
    sys.exit(0)
report(f"prometheus_client parses the scrape ({len(families)} families)", True)

expected = {
    "sse_open_streams": "gauge", "sse_users": "gauge", "sse_connection_threads": "gauge",
    "sse_timer_frames": "counter", "sse_pushed_frames": "counter", "sse_stream_bytes": "counter",
    "sse_publishes": "counter", "sse_rejects": "counter", "sse_closes": "counter",
    "sse_publish_latency_seconds": "histogram", "sse_tick_lateness_seconds": "histogram",
}
types = {name: family.type for name, family in families.items()}
report(f"families and types as documented ({types})", types == expected)

def value(name, **labels):
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None

report("no stream open", value("sse_open_streams") == 0)
report("one close, reason eof", value("sse_closes_total", reason="eof") == 1)
report("every close reason present", len(families["sse_closes"].samples) == 8)
report("one publish accepted", value("sse_publishes_total", outcome="accepted", status="202") == 1)
report("one pushed frame", value("sse_pushed_frames_total") == 1)
report("one 404 reject", value("sse_rejects_total", status="404") == 1)
ticks = value("sse_timer_frames_total")
report(f"timer frames written ({ticks})", ticks is not None and ticks >= 3)
report("every tick timed", value("sse_tick_lateness_seconds_count") == ticks)
report("bytes written", (value("sse_stream_bytes_total") or 0) > 0)
for name in ("sse_publish_latency_seconds", "sse_tick_lateness_seconds"):
    buckets = [(float(s.labels["le"]), s.value) for s in families[name].samples if s.name.endswith("_bucket")]
    count = value(name + "_count")
    ok = (buckets == sorted(buckets) and buckets[-1][0] == float("inf") and buckets[-1][1] == count
          and all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])))
    report(f"{name}: buckets cumulative, +Inf equals _count ({count})", ok)
PY
)
echo "$parsed"
passed=$((passed + $(grep -c '^ok ' <<<"$parsed" || true)))
failed=$((failed + $(grep -c '^FAIL ' <<<"$parsed" || true)))
[ -n "$parsed" ] || check "the python check ran" 1

if [ "$failed" -gt 0 ]; then
  err "scrape:"; cat "$scrape" >&2
  err "server log:"; cat "$log" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
