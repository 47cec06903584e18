#!/usr/bin/env bash
# Lease benchmark: builds lull-coordinator and the lease_bench binary in
# release mode, then runs the bench once against real nats-server, Postgres
# and etcd (all started by the bench on free 127.0.0.1 ports). Installs
# nats-server, PostgreSQL and Debian's etcd-server when missing.
#
# Usage: scripts/bench-leases.sh [lease_bench flags...]
#   e.g. scripts/bench-leases.sh --levels 1,100 --measure-sec 3
# The markdown report goes to $LULL_BENCH_OUT (default
# $CARGO_TARGET_DIR/bench/leases.md) unless --markdown is given.
# See docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh etcd-server

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/lull-target}"
cargo build --release -p lull-coordinator --bin lull-coordinator -p lull-tests --bin lease_bench

out="${LULL_BENCH_OUT:-$CARGO_TARGET_DIR/bench/leases.md}"
mkdir -p "$(dirname "$out")"
args=("$@")
case " ${args[*]-} " in
  *" --markdown "*) ;;
  *) args+=(--markdown "$out") ;;
esac
exec "$CARGO_TARGET_DIR/release/lease_bench" "${args[@]}"
