#!/usr/bin/env bash
# Runs Lull's whole test suite: unit tests, and the end-to-end suite that
# starts real nats-server and Postgres processes. Installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Tools the deploy/observe tests use: promtool, docker-compose, kubernetes-validate.
scripts/install-deploy-tools.sh
# Build every binary first: the end-to-end tests run them as processes.
cargo build --workspace --all-targets --locked
# The Python client package: mypy --strict and its pytest suite, against a
# real nats-server, Postgres and the lull-coordinator just built.
clients/python/run-tests.sh
cargo test --workspace --locked --no-fail-fast "$@"
