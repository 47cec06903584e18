#!/usr/bin/env bash
# Installs the system packages Lull's tests and local start need, when they
# are missing: nats-server, PostgreSQL and python3 (Debian packages). Idempotent.
# Extra package names may be passed as arguments (e.g. prometheus).
set -euo pipefail

have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null 2>&1
}

missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
have_pg || missing+=(postgresql)
# CI's architecture check (scripts/check-architecture.py).
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# The Python client's test suite runs in a virtualenv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
for extra in "$@"; do
  case "$extra" in
    prometheus) command -v promtool >/dev/null 2>&1 || missing+=(prometheus) ;;
    *) dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra") ;;
  esac
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "installing missing packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "need root (or sudo) to run: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
