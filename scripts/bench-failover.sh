#!/usr/bin/env bash
# Failover benchmark (issue 13): builds lull-coordinator and failover_bench
# in release mode, then runs two coordinators against a real nats-server and
# Postgres (started on free 127.0.0.1 ports) under a steady lease load, and
# kills the leader --kills times (default 20). Prints the time from each
# kill to the first lease answer and to the first new grant (p50, max), the
# leases lost and the checker's over-grants. Installs nats-server and
# PostgreSQL when missing.
#
# Usage: scripts/bench-failover.sh [--kills N] [--clients N] [--settle-sec S]
# The markdown table goes to $LULL_BENCH_OUT (default
# $CARGO_TARGET_DIR/bench/failover.md). See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lull-target}"
cargo build --release -p lull-coordinator --bin lull-coordinator -p lull-tests --bin failover_bench

out="${LULL_BENCH_OUT:-$CARGO_TARGET_DIR/bench/failover.md}"
mkdir -p "$(dirname "$out")"
exec "$CARGO_TARGET_DIR/release/failover_bench" "$@" --markdown "$out"
