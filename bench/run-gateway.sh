#!/usr/bin/env bash
# Gateway overhead (issue 4): authenticated `tools/call echo` through cimdgate's gateway vs the
# same call straight to the upstream MCP server (a separate rmcp process), then both at a fixed
# 1,000 req/s, then the idle RSS of a zero-config `cimdgate serve`.
#   1. wrk, max throughput: upstream direct, then gateway (same tool, same connections)
#   2. bench_gateway load (open-loop, fixed rate, latency from the scheduled send time):
#      upstream direct, then gateway, at RATE req/s
#   3. RSS of the bench gateway process after the runs, and of an idle `cimdgate serve`
# Needs wrk (Debian: apt-get install -y wrk). Figures go to docs/benchmarks.md.
# Knobs: DURATION (10s), CONNS (16), RATE (1000), RATE_SECS (20), UPSTREAM_ALLOC (system:
# the upstream is the `bench_upstream` example with the system allocator, as a third-party rmcp
# server ships; jemalloc: the same server built with cimdgate's allocator).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
RATE=${RATE:-1000}
RATE_SECS=${RATE_SECS:-20}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
UPSTREAM_ALLOC=${UPSTREAM_ALLOC:-system}
cargo build --release -q -p cimdgate-server --example bench_gateway --example bench_upstream
case "$UPSTREAM_ALLOC" in
  system) export BENCH_UPSTREAM=target/release/examples/bench_upstream ;;
  jemalloc) unset BENCH_UPSTREAM ;;
  *) echo "UPSTREAM_ALLOC must be system or jemalloc" >&2; exit 2 ;;
esac
echo "upstream allocator: $UPSTREAM_ALLOC"
OUT=$(mktemp -d)
BIN=target/release/examples/bench_gateway
"$BIN" serve "$OUT" >"$OUT/server.log" 2>&1 </dev/null &
PID=$!
SERVE_PID=""
cleanup() {
  kill "$PID" 2>/dev/null || true
  wait "$PID" 2>/dev/null || true
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$OUT"
}
trap cleanup EXIT
for _ in $(seq 1 600); do
  grep -q '^READY' "$OUT/server.log" && break
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '^READY' "$OUT/server.log" || { echo "bench_gateway did not become ready" >&2; exit 1; }
# shellcheck disable=SC1091
. "$OUT/env.sh"
export TOKEN
cat bench/gateway_echo.lua bench/report.lua >"$OUT/echo.lua"
origin() { printf '%s' "${1%/mcp}"; }
# Sanity: both answer the echo call.
for u in "$UPSTREAM_URL" "$GATEWAY_URL"; do
  curl -fsS -X POST "$u" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25' \
    --data '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}' \
    | grep -q '"text":"hello"' || { echo "echo failed at $u" >&2; exit 1; }
done
echo "== max throughput (wrk -t1 -c$CONNS -d$DURATION)"
for name in direct gateway; do
  if [ "$name" = direct ]; then u=$UPSTREAM_URL; else u=$GATEWAY_URL; fi
  printf '%-8s ' "$name"
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$OUT/echo.lua" "$(origin "$u")" | grep '^RESULT'
done
echo "== fixed rate ($RATE req/s for ${RATE_SECS}s, open loop)"
for name in direct gateway; do
  if [ "$name" = direct ]; then u=$UPSTREAM_URL; else u=$GATEWAY_URL; fi
  printf '%-8s ' "$name"
  "$BIN" load "$u" "$TOKEN" "$RATE" "$RATE_SECS" 64
done
echo "== memory"
echo "bench gateway process (AS + gateway, after the runs): $(ps -o rss= -p "$GATEWAY_PID") KiB"
echo "upstream process: $(ps -o rss= -p "$UPSTREAM_PID") KiB"
# Idle RSS of the real binary with no configuration (127.0.0.1:8080, ./cimdgate-data).
if cargo build --release -q -p cimdgate 2>/dev/null; then
  SERVE_DIR=$OUT/serve
  mkdir -p "$SERVE_DIR"
  (cd "$SERVE_DIR" && exec "$OLDPWD/target/release/cimdgate" serve >"$SERVE_DIR/log" 2>&1) &
  SERVE_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1 && break
    sleep 0.1
  done
  if curl -fsS http://127.0.0.1:8080/healthz >/dev/null 2>&1; then
    sleep 3
    echo "idle cimdgate serve (no config, after /healthz): $(ps -o rss= -p "$SERVE_PID") KiB"
  else
    echo "cimdgate serve did not answer /healthz on 127.0.0.1:8080:" >&2
    tail -5 "$SERVE_DIR/log" >&2
  fi
else
  echo "cimdgate binary did not build; idle RSS not measured" >&2
fi
