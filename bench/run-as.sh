#!/usr/bin/env bash
# Load runs for the authorization server (issue 3), from a second process with wrk:
#   1. GET /authorize for a cached CIMD client
#   2. POST /token code exchange (public client + PKCE)
#   3. POST /token code exchange with an ES256 private_key_jwt assertion (fresh jti each)
# Needs wrk (Debian: apt-get install -y wrk). Figures go to docs/benchmarks.md.
# Knobs: DURATION (10s), CONNS (16), CODES (300000 single-use codes per token scenario),
# BENCH_STORE_URL (default: an embedded store in a temp folder; e.g. redis://127.0.0.1:6379/0),
# BENCH_SERVER (a prebuilt bench_server binary, for before/after runs; default: build it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
CODES=${CODES:-300000}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 2; }
if [ -z "${BENCH_SERVER:-}" ]; then
  cargo build --release -q -p cimdgate-server --example bench_server
  BENCH_SERVER=target/release/examples/bench_server
fi
OUT=$(mktemp -d)
"$BENCH_SERVER" "$OUT" "$CODES" >"$OUT/server.log" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$OUT"' EXIT
for _ in $(seq 1 1200); do
  grep -q '^READY' "$OUT/server.log" && break
  kill -0 "$PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 1; }
  sleep 0.5
done
grep -q '^READY' "$OUT/server.log" || { echo "bench_server did not become ready" >&2; exit 1; }
# shellcheck disable=SC1091
. "$OUT/env.sh"
run() {
  local name=$1 script=$2
  cat "bench/$script" bench/report.lua >"$OUT/$name.lua"
  printf '%-12s ' "$name"
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$OUT/$name.lua" "http://127.0.0.1:$CIMDGATE_PORT" | grep '^RESULT'
}
run authorize authorize.lua
run token token.lua
run token_pkjwt token_pkjwt.lua
echo "server RSS: $(ps -o rss= -p "$PID") KiB"
