#!/usr/bin/env bash
# Installs what scripts/clients.sh, scripts/redbot.sh and the cluster tests need: chromium, nginx,
# curl, python3-venv, redis-server, redis-tools (Debian packages) and the npm packages pinned in
# package-lock.json. Idempotent. Usage: scripts/clients/install.sh
set -euo pipefail
err() { printf '%s\n' "$*" >&2; }
cd "$(dirname "$0")"
SUDO=""; [[ $(id -u) == 0 ]] || SUDO=sudo

missing=()
for pair in chromium:/usr/bin/chromium nginx:/usr/sbin/nginx curl:/usr/bin/curl \
  redis-server:/usr/bin/redis-server redis-tools:/usr/bin/redis-cli; do
  [[ -x ${pair#*:} ]] || missing+=("${pair%%:*}")
done
if ((${#missing[@]} > 0)); then
  if [[ ${CI:-} == true || $(id -u) == 0 ]]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
  else
    err "missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [[ ${CI:-} == true || $(id -u) == 0 ]]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends nodejs npm
  fi
fi
# scripts/redbot.sh and scripts/clients/nginx.sh need python3; redbot.sh makes a venv (ensurepip).
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  if [[ ${CI:-} == true || $(id -u) == 0 ]]; then
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends python3 python3-venv
  else
    err "python3 with venv is required: sudo apt-get install -y python3 python3-venv"; exit 1
  fi
fi
command -v node >/dev/null || { err "node (20 or newer) is required"; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 20)) || { err "node $node_major is too old: 20 or newer is required"; exit 1; }
# npm ci installs exactly what package-lock.json pins; npm ls fails if anything is missing or differs.
if ! npm ls --all >/dev/null 2>&1; then
  npm ci --no-audit --no-fund
fi
echo "clients: chromium, nginx, curl, redis-server, redis-cli and node_modules are ready"
