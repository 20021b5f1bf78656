#!/usr/bin/env bash
# Lints the server's plain replies with REDbot (https://redbot.org, PyPI `redbot`): `/`, `/users`,
# `/metrics`, a 404 and a stream's 401; fails on any warning.
# Usage: scripts/redbot.sh   (SSE_SERVER_BIN=path skips the build)
set -euo pipefail
cd "$(dirname "$0")/.."
err() { echo "redbot: $*" >&2; }

# REDbot lives in a venv under target/ (gitignored), pinned so a new release cannot change the
# verdict under us. It is installed on first use; python3 with its venv module is required.
REDBOT_VERSION=2.7.1
VENV=${REDBOT_VENV:-target/redbot-venv}

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE
  if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok   $1"; else failed=$((failed + 1)); echo "FAIL $1"; fi
}
give_up() { err "$*"; echo "$passed passed, $((failed + 1)) failed"; exit 1; }

command -v python3 >/dev/null || give_up "python3 is required (apt-get install python3 python3-venv)"
if ! "$VENV/bin/redbot" --help >/dev/null 2>&1 ||
  [ "$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("redbot"))' 2>/dev/null)" != "$REDBOT_VERSION" ]; then
  echo "installing redbot==$REDBOT_VERSION into $VENV"
  python3 -m venv "$VENV" || give_up "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "redbot==$REDBOT_VERSION" ||
    give_up "pip install redbot==$REDBOT_VERSION failed"
fi

binary=${SSE_SERVER_BIN:-}
if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary=target/release/sse-server
fi
log=$(mktemp)
har=$(mktemp)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -f "$log" "$har"
}
trap cleanup EXIT

# A subscribe secret, so a stream request without a token gets the 401 a browser would see. Only
# this run's server knows it; it is made up here and never written to disk.
SSE_SUBSCRIBE_SECRET="redbot-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
  "$binary" --port 0 --interval 200ms >"$log" &
server_pid=$!
base=""
for _ in $(seq 1 100); do
  base=$(sed -n 's/^listening on \(http:.*\)$/\1/p' "$log" | head -n 1)
  [ -n "$base" ] && break
  sleep 0.05
done
[ -n "$base" ] || { cat "$log" >&2; give_up "server did not start"; }

# Checks one URL: REDbot's HAR output lists each note with a level (GOOD, INFO, WARN, BAD).
# WARN and BAD fail. INFO notes are facts, not faults; each one we expect is listed below with
# the reason it is right for us, and any other INFO note fails too, so a new one gets read.
lint() { # lint PATH EXPECTED-STATUS EXPECTED-INFO-NOTES...
  local path=$1 status=$2; shift 2
  local rc=0
  timeout 60 "$VENV/bin/redbot" -o har "$base$path" >"$har" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    check "redbot $path ran (exit $rc: $(head -c 300 "$har"))" 1
    return
  fi
  local verdict
  verdict=$("$VENV/bin/python" - "$har" "$status" "$@" <<'PY'
import json, sys
har, status, expected_info = sys.argv[1], int(sys.argv[2]), set(sys.argv[3:])
entries = json.load(open(har))["log"]["entries"]
problems = []
notes = [note for entry in entries for note in entry.get("_red_messages", [])]
got = entries[0]["response"]["status"] if entries else None
if got != status:
    problems.append(f"status {got}, expected {status}")
if not any(note["note_id"] == "DATE_CORRECT" for note in notes):
    problems.append("no DATE_CORRECT note (is the Date header there?)")
for note in notes:
    line = f'{note["level"]} {note["note_id"]}: {note["summary"]}'
    print("     " + line)
    if note["level"] in ("WARN", "BAD"):
        problems.append(line)
    elif note["level"] == "INFO" and note["note_id"] not in expected_info:
        problems.append("unexpected " + line)
print("PROBLEMS " + "; ".join(problems) if problems else "CLEAN")
PY
  ) || verdict="PROBLEMS the HAR output could not be read: $(head -c 300 "$har")"
  printf '%s\n' "$verdict" | grep -v '^PROBLEMS \|^CLEAN$' || true
  local summary
  summary=$(printf '%s\n' "$verdict" | tail -n 1)
  local detail=""
  [ "$summary" = CLEAN ] || detail=" (${summary#PROBLEMS })"
  check "redbot $path: no warnings$detail" "$([ "$summary" = CLEAN ]; echo $?)"
}

# `/`: STORE_STORABLE, because a cache may keep the demo page; FRESHNESS_NO_CACHE, because
# `no-cache` makes it ask (with the ETag) before each reuse, which is what we want.
lint / 200 STORE_STORABLE FRESHNESS_NO_CACHE
# `/users` and `/metrics`: STORE_NO_STORE, because live counts must never come from a cache.
lint /users 200 STORE_NO_STORE
lint /metrics 200 STORE_NO_STORE
# `/nope`: STATUS_NOT_FOUND, because we asked for a 404; STORE_UNSTORABLE, because REDbot does
# not store it (a 404 without freshness information is not worth caching).
lint /nope 404 STATUS_NOT_FOUND STORE_UNSTORABLE
# `/sse/redbot` without a token: a 401 (RFC 6750 §3.1), STORE_UNSTORABLE for the same reason.
lint /sse/redbot 401 STORE_UNSTORABLE

if [ "$failed" -gt 0 ]; then
  err "server log:"; cat "$log" >&2
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
