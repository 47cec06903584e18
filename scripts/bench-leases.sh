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
# LULL_BENCH_NICE=-10 runs the bench (and the servers it starts) in a
# session of its own whose scheduler autogroup has that niceness, so that
# other work on a shared machine gets only the leftover CPU (negative values
# need root; with autogroups on, a plain `nice` would not be enough).
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
bench="$CARGO_TARGET_DIR/release/lease_bench"
nice_level="${LULL_BENCH_NICE:-0}"
if [ "$nice_level" = 0 ]; then
  exec "$bench" "${args[@]}"
fi
exec setsid --wait bash -c '
  echo "$0" > /proc/self/autogroup 2>/dev/null || echo "cannot set the autogroup niceness" >&2
  exec nice -n "$0" "$@"' "$nice_level" "$bench" "${args[@]}"
