#!/usr/bin/env bash
# Starts the whole Lull system on this machine: nats-server (JetStream),
# a private Postgres, the coordinator and an agent for this host. Prints
# the metrics URLs. Ctrl-C (or SIGTERM) stops everything cleanly.
#
# Settings (environment):
#   LULL_LOCAL_DIR        state directory          (default /tmp/lull-local)
#   LULL_LOCAL_NATS_PORT  NATS port                (default 14222)
#   LULL_LOCAL_PG_PORT    Postgres port            (default 15432)
#   LULL_LOCAL_COORD_METRICS  coordinator metrics  (default 127.0.0.1:9464)
#   LULL_LOCAL_AGENT_METRICS  agent metrics        (default 127.0.0.1:9465)
#   LULL_LOCAL_PROFILE    cargo profile: dev|release (default dev)
#   LULL_LOCAL_DEMO=1     same as --demo
#   LULL_LOCAL_BIN_DIR    use the lull binaries in this directory; skip the build
#
# Flags:
#   --demo   demo thresholds: this host counts as quiet unless it is close to
#            saturated, so that a first `lullctl run --cost 10 -- sleep 3`
#            is granted on a busy laptop (never use these in production)
#
# While it runs, lullctl in any terminal of this user reaches this system
# without an export: the script writes lullctl's context file
# (${XDG_CONFIG_HOME:-~/.config}/lull/lullctl.toml, or $LULL_CONTEXT) and
# removes it on exit. It never overwrites a context file it did not write.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

STATE=${LULL_LOCAL_DIR:-/tmp/lull-local}
NATS_PORT=${LULL_LOCAL_NATS_PORT:-14222}
PG_PORT=${LULL_LOCAL_PG_PORT:-15432}
COORD_METRICS=${LULL_LOCAL_COORD_METRICS:-127.0.0.1:9464}
AGENT_METRICS=${LULL_LOCAL_AGENT_METRICS:-127.0.0.1:9465}
PROFILE=${LULL_LOCAL_PROFILE:-dev}
DEMO=${LULL_LOCAL_DEMO:-0}
for arg in "$@"; do
  case "$arg" in
    --demo) DEMO=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done
# Plain-text logs in the log files.
export NO_COLOR=1

scripts/install-deps.sh

pg_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
INITDB=$(pg_bin initdb)
POSTGRES=$(pg_bin postgres)
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)

# Postgres refuses to run as root: run it as the postgres user then.
AS_PG=()
if [ "$(id -u)" -eq 0 ]; then
  AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi

mkdir -p "$STATE"/nats "$STATE"/logs "$STATE"/spool
chmod 755 "$STATE"

# Cargo shows its progress; the first build takes a few minutes. Test and
# run builds share their artefacts, so after scripts/test.sh this is quick.
if [ -n "${LULL_LOCAL_BIN_DIR:-}" ]; then
  BIN_DIR=$LULL_LOCAL_BIN_DIR
else
echo "building lull ($PROFILE)..."
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys;print(json.load(sys.stdin)["target_directory"])')
if [ "$PROFILE" = release ]; then
  cargo build --release --bins; BIN_DIR=$TARGET_DIR/release
else
  cargo build --bins; BIN_DIR=$TARGET_DIR/debug
fi
fi

# Every part runs in its own session, so a Ctrl-C reaches only this script,
# which then stops the parts in reverse order (agent, coordinator, Postgres,
# NATS) and waits for each.
PIDS=()
CONTEXT=${LULL_CONTEXT:-${XDG_CONFIG_HOME:-$HOME/.config}/lull/lullctl.toml}
CONTEXT_MARK="# written by deploy/local/run.sh; removed when it stops"
OWN_CONTEXT=0
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  if [ "$OWN_CONTEXT" = 1 ] && head -n 1 "$CONTEXT" 2>/dev/null | grep -qxF "$CONTEXT_MARK"; then
    rm -f "$CONTEXT"
  fi
  for ((i=${#PIDS[@]}-1; i>=0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "${PIDS[i]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  echo "stopped."
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }

# Refuse to start on a port something else already listens on.
for p in "$NATS_PORT" "$PG_PORT" "${COORD_METRICS##*:}" "${AGENT_METRICS##*:}"; do
  if port_open "$p"; then
    echo "port $p is already in use; choose others with LULL_LOCAL_*_PORT / *_METRICS" >&2
    exit 1
  fi
done

# Waits until our process $1 listens on port $2 (and is still alive).
wait_port() {
  for _ in $(seq 1 100); do
    kill -0 "$1" 2>/dev/null || { echo "process $1 exited; see $STATE/logs" >&2; return 1; }
    port_open "$2" && return 0
    sleep 0.1
  done
  echo "port $2 did not open; see $STATE/logs" >&2
  return 1
}

# Replies such as the full regions.stats document outgrow NATS's 1 MB
# default payload limit on a large fleet (the flags below override the rest).
printf 'max_payload: 8MB\n' >"$STATE/nats.conf"
setsid "$NATS" -c "$STATE/nats.conf" -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$STATE/nats" \
  >"$STATE/logs/nats.log" 2>&1 &
PIDS+=($!)
wait_port "${PIDS[-1]}" "$NATS_PORT"

if [ ! -f "$STATE/pg/PG_VERSION" ]; then
  mkdir -p "$STATE/pg" "$STATE/pgsock"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$STATE/pg" "$STATE/pgsock"
  "${AS_PG[@]}" "$INITDB" -D "$STATE/pg" -A trust -U postgres --no-sync -E UTF8 >"$STATE/logs/initdb.log" 2>&1
fi
mkdir -p "$STATE/pgsock"; [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$STATE/pgsock"
setsid "${AS_PG[@]}" "$POSTGRES" -D "$STATE/pg" -p "$PG_PORT" -k "$STATE/pgsock" \
  -c listen_addresses=127.0.0.1 >"$STATE/logs/postgres.log" 2>&1 &
PIDS+=($!)
wait_port "${PIDS[-1]}" "$PG_PORT"
for _ in $(seq 1 50); do
  "$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc "select 1" >/dev/null 2>&1 && break
  sleep 0.2
done
"$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname='lull'" | grep -q 1 \
  || "$(pg_bin psql)" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -qc "CREATE DATABASE lull"

export LULL_NATS_URL="nats://127.0.0.1:$NATS_PORT"
export LULL_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/lull"
export LULL_SPOOL_DIR="$STATE/spool"

COORD_CONFIG=()
if [ "$DEMO" = 1 ]; then
  # Quiet and busy points far up every curve: only a nearly saturated host
  # leaves QUIET. Panic thresholds stay as they are.
  cat >"$STATE/coordinator-demo.toml" <<'TOML'
# deploy/local/run.sh --demo: lenient thresholds for a first lease on a busy machine.
[quiet]
cpu_quiet_pct = 90.0
cpu_busy_pct = 99.0
mem_quiet_pct = 93.0
mem_busy_pct = 99.0
swap_quiet_pct = 90.0
swap_busy_pct = 99.0
load_quiet_per_core = 4.0
load_busy_per_core = 8.0
cpu_pressure_quiet_pct = 80.0
cpu_pressure_busy_pct = 99.0
mem_pressure_quiet_pct = 60.0
mem_pressure_busy_pct = 95.0
io_pressure_quiet_pct = 80.0
io_pressure_busy_pct = 99.0
TOML
  COORD_CONFIG=(--config "$STATE/coordinator-demo.toml")
fi

LULL_METRICS_ADDR="$COORD_METRICS" setsid "$BIN_DIR/lull-coordinator" "${COORD_CONFIG[@]}" >"$STATE/logs/coordinator.log" 2>&1 &
PIDS+=($!)
wait_port "${PIDS[-1]}" "${COORD_METRICS##*:}"
LULL_METRICS_ADDR="$AGENT_METRICS" setsid "$BIN_DIR/lull-agent" >"$STATE/logs/agent.log" 2>&1 &
PIDS+=($!)

# lullctl's context file, unless the user keeps one of their own there.
if [ ! -e "$CONTEXT" ] || head -n 1 "$CONTEXT" 2>/dev/null | grep -qxF "$CONTEXT_MARK"; then
  mkdir -p "$(dirname "$CONTEXT")"
  printf '%s\nnats_url = "%s"\n' "$CONTEXT_MARK" "$LULL_NATS_URL" >"$CONTEXT"
  OWN_CONTEXT=1
  CONTEXT_NOTE="lullctl reaches it without an export (context file $CONTEXT)."
else
  CONTEXT_NOTE="$CONTEXT is yours, so it was left alone: export LULL_NATS_URL (below)."
fi
DEMO_NOTE=""
[ "$DEMO" = 1 ] && DEMO_NOTE="  (demo thresholds: $STATE/coordinator-demo.toml)"

cat <<MSG

Lull is running (state and logs in $STATE).$DEMO_NOTE
  NATS:                 $LULL_NATS_URL
  Postgres:             $LULL_DATABASE_URL
  coordinator metrics:  http://$COORD_METRICS/metrics
  agent metrics:        http://$AGENT_METRICS/metrics
$CONTEXT_NOTE

For the SDKs and the examples in another shell:
  export LULL_NATS_URL=$LULL_NATS_URL

Try:
  cargo run -q -p lullctl -- hosts
  cargo run -q -p lullctl -- run --cost 10 -- sleep 3
  curl -s http://$COORD_METRICS/metrics | grep lull_host_quiet_score

Press Ctrl-C to stop.
MSG

# Exit (and clean up) when any part dies, or on Ctrl-C.
wait -n "${PIDS[@]}" || true
echo "a component exited; see $STATE/logs" >&2
