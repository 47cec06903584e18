#!/usr/bin/env bash
# Footprint benchmark: runs lull-agent (release) and Debian's
# prometheus-node-exporter side by side on this host for DURATION seconds
# at the same INTERVAL (the agent collects and publishes to a local NATS
# every INTERVAL; node_exporter is scraped every INTERVAL), then prints
# peak RSS (VmHWM), CPU seconds (utime + stime) and the agent/node_exporter
# ratios, as text and as a Markdown table.
#
# Usage: agent/benches/footprint.sh            (60 s at 2 s)
#        DURATION=30 INTERVAL=1 agent/benches/footprint.sh
# Env: DURATION (60), INTERVAL (2), AGENT_BIN (default: build release),
#      NODE_EXPORTER (prometheus-node-exporter), NATS_SERVER (nats-server;
#      without it the agent runs with NATS unreachable).
set -euo pipefail

DURATION=${DURATION:-60}
INTERVAL=${INTERVAL:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/lull-target}

if [[ -z "${AGENT_BIN:-}" ]]; then
  echo "building lull-agent (release)..." >&2
  cargo build --release -q -p lull-agent --manifest-path "$ROOT/Cargo.toml"
  AGENT_BIN="$CARGO_TARGET_DIR/release/lull-agent"
fi

NODE_EXPORTER=${NODE_EXPORTER:-$(command -v prometheus-node-exporter || true)}
if [[ -z "$NODE_EXPORTER" ]]; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "installing prometheus-node-exporter..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus-node-exporter >/dev/null
    NODE_EXPORTER=$(command -v prometheus-node-exporter)
  else
    echo "prometheus-node-exporter is missing: sudo apt-get install prometheus-node-exporter" >&2
    exit 1
  fi
fi
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server || true)}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

WORK=$(mktemp -d /tmp/lull-footprint.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

NATS_PORT=$(free_port)
if [[ -n "$NATS_SERVER" ]]; then
  "$NATS_SERVER" -a 127.0.0.1 -p "$NATS_PORT" >"$WORK/nats.log" 2>&1 &
  PIDS+=($!)
  sleep 0.5
else
  echo "nats-server not found: the agent runs with NATS unreachable" >&2
fi

NE_PORT=$(free_port)
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$NE_PORT" >"$WORK/node_exporter.log" 2>&1 &
NE_PID=$!
PIDS+=("$NE_PID")

AGENT_PORT=$(free_port)
LULL_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
LULL_METRICS_ADDR="127.0.0.1:$AGENT_PORT" \
LULL_SPOOL_DIR="$WORK/spool" \
LULL_INTERVAL_SEC="$INTERVAL" \
LULL_COLLECTORS__HOST__INTERVAL_SEC="$INTERVAL" \
LULL_COLLECTORS__PRESSURE__INTERVAL_SEC="$INTERVAL" \
LULL_LOG=warn \
  "$AGENT_BIN" >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
PIDS+=("$AGENT_PID")
sleep 1

echo "running both for ${DURATION}s at ${INTERVAL}s (agent pid $AGENT_PID, node_exporter pid $NE_PID)..." >&2
end=$((SECONDS + DURATION))
scrapes=0
while ((SECONDS < end)); do
  if curl -s -o /dev/null "http://127.0.0.1:$NE_PORT/metrics"; then scrapes=$((scrapes + 1)); fi
  sleep "$INTERVAL"
done

CLK=$(getconf CLK_TCK)
peak_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
cpu_s() {
  # utime and stime are fields 14 and 15, counted after the ")" of comm
  sed 's/^.*) //' "/proc/$1/stat" | awk -v clk="$CLK" '{printf "%.2f", ($12 + $13) / clk}'
}
for p in "$AGENT_PID" "$NE_PID"; do
  [[ -r /proc/$p/status ]] || { echo "process $p died; see $WORK" >&2; trap - EXIT; exit 1; }
done
A_RSS=$(peak_kb "$AGENT_PID"); N_RSS=$(peak_kb "$NE_PID")
A_CPU=$(cpu_s "$AGENT_PID"); N_CPU=$(cpu_s "$NE_PID")
PUBLISHED=$(curl -s "http://127.0.0.1:$AGENT_PORT/metrics" | awk '/^lull_agent_published_total\{kind="stats"\}/ {print $2}')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

echo
echo "host: $(nproc) CPUs, $(uname -r); ${DURATION}s at ${INTERVAL}s; node_exporter scrapes: $scrapes; agent snapshots published: ${PUBLISHED:-0}"
printf '%-22s %14s %14s %8s\n' "" "lull-agent" "node_exporter" "ratio"
printf '%-22s %14s %14s %8s\n' "peak RSS (MB)" "$(mb "$A_RSS")" "$(mb "$N_RSS")" "$(ratio "$A_RSS" "$N_RSS")"
printf '%-22s %14s %14s %8s\n' "CPU seconds" "$A_CPU" "$N_CPU" "$(ratio "$A_CPU" "$N_CPU")"
echo
echo "| ${DURATION} s at ${INTERVAL} s | lull-agent | node_exporter | agent / node_exporter |"
echo "|---|---|---|---|"
echo "| peak RSS (MB) | $(mb "$A_RSS") | $(mb "$N_RSS") | $(ratio "$A_RSS" "$N_RSS") |"
echo "| CPU seconds | $A_CPU | $N_CPU | $(ratio "$A_CPU" "$N_CPU") |"
