#!/usr/bin/env bash
# Tests the Python client: creates (or reuses) a virtualenv, installs the
# package with its test extras, runs `mypy --strict` on the package, then
# pytest against a real nats-server, Postgres and lull-coordinator that the
# suite starts itself (see tests/conftest.py).
#
# The coordinator binary comes from LULL_COORDINATOR_BIN, else
# $CARGO_TARGET_DIR/debug, else the repository's target/debug: build it first
# (`cargo build -p lull-coordinator`). Extra arguments go to pytest.
#   LULL_PY_VENV   virtualenv to use (default /var/tmp/lull-py)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LULL_PY_VENV:-/var/tmp/lull-py}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here[test]"
cd "$here"
"$venv/bin/python" -m mypy --strict src/lull
"$venv/bin/python" -m pytest -q "$@"
