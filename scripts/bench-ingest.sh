#!/usr/bin/env bash
# Stats ingest benchmark (issue 4): builds lull-coordinator and the
# ingest_bench binary in release mode, then runs the bench once against a
# real nats-server and Postgres (started by the bench on free 127.0.0.1
# ports). Installs nats-server and PostgreSQL when missing.
#
# Usage: scripts/bench-ingest.sh [ingest_bench flags...]
#   e.g. scripts/bench-ingest.sh --hosts 10000 --rates 25000,50000,75000
# The markdown tables go to $LULL_BENCH_OUT (default
# $CARGO_TARGET_DIR/bench/ingest.md) unless --markdown is given.
# See docs/quiet.md ("Ingest benchmark").
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lull-target}"
cargo build --release -p lull-coordinator --bin lull-coordinator -p lull-tests --bin ingest_bench

out="${LULL_BENCH_OUT:-$CARGO_TARGET_DIR/bench/ingest.md}"
mkdir -p "$(dirname "$out")"
args=("$@")
case " ${args[*]-} " in
  *" --markdown "*) ;;
  *) args+=(--markdown "$out") ;;
esac
exec "$CARGO_TARGET_DIR/release/ingest_bench" "${args[@]}"
