#!/usr/bin/env bash
# Installs the tools the deploy and observability tests use, when missing:
#   prometheus           promtool and prometheus (Debian package `prometheus`)
#   kubernetes-validate  offline Kubernetes schema validation (PyPI)
#   docker-compose       `docker-compose config` (Debian package), only when
#                        the `docker compose` plugin is not there
# With no argument, installs all three. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(prometheus kubernetes-validate docker-compose)

for tool in "${tools[@]}"; do
  case "$tool" in
    prometheus)
      scripts/install-deps.sh prometheus
      ;;
    kubernetes-validate)
      if ! python3 -c 'import kubernetes_validate' >/dev/null 2>&1; then
        echo "installing kubernetes-validate (PyPI)" >&2
        python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate
      fi
      ;;
    docker-compose)
      if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
        scripts/install-deps.sh docker-compose
      fi
      ;;
    *)
      echo "unknown tool '$tool' (prometheus, kubernetes-validate, docker-compose)" >&2
      exit 2
      ;;
  esac
done
