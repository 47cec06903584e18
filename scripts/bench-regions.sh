#!/usr/bin/env bash
# Regions benchmark: builds lull-coordinator and the regions_bench binary in
# release mode, then measures (against nats-server and Postgres started by
# the bench on free 127.0.0.1 ports) the sustained ingest of build reports
# into Postgres and the regions.stats latency with 1,000,000 stored builds.
#
# Usage: scripts/bench-regions.sh [regions_bench flags...]
#   e.g. scripts/bench-regions.sh --reports 20000 --stored 200000
# The markdown table goes to $LULL_BENCH_OUT (default
# $CARGO_TARGET_DIR/bench/regions.md) unless --markdown is given.
# See docs/regions.md ("Benchmark").
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lull-target}"
cargo build --release -p lull-coordinator --bin lull-coordinator -p lull-tests --bin regions_bench

out="${LULL_BENCH_OUT:-$CARGO_TARGET_DIR/bench/regions.md}"
mkdir -p "$(dirname "$out")"
args=("$@")
case " ${args[*]-} " in
  *" --markdown "*) ;;
  *) args+=(--markdown "$out") ;;
esac
exec "$CARGO_TARGET_DIR/release/regions_bench" "${args[@]}"
