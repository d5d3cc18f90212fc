#!/usr/bin/env bash
# Load runs for the authorization server (issue 3), from a second process with wrk:
#   1. GET /authorize for a cached CIMD client
#   2. POST /token code exchange (public client + PKCE)
#   3. POST /token code exchange with an ES256 private_key_jwt assertion (fresh jti each)
# The codes for 2 and 3 are minted right before each run through real authorize → login →
# consent flows (bench/side_by_side/driver.py; nothing is written into the store by hand), and
# each token run ends when its codes are spent (STOP_WHEN_SPENT). cimdgate codes live 60 s, so
# CODES is what the driver mints in well under that. For cimdgate next to FastMCP, use
# bench/side-by-side. Figures go to docs/benchmarks.md.
# Knobs: DURATION (10s, the /authorize run and the cap of each token run), CONNS (16),
# CODES (8000 per token run; also the number of assertions prepared),
# BENCH_STORE_URL (default: an embedded store in a temp folder; e.g. redis://127.0.0.1:6379/0),
# BENCH_SERVER (a prebuilt bench_server binary, for before/after runs; default: build it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
CODES=${CODES:-8000}
# shellcheck source=bench/side_by_side/setup.sh
. bench/side_by_side/setup.sh
ensure_venv
ensure_wrk
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
ORIGIN=http://127.0.0.1:$CIMDGATE_PORT
run() {
  local name=$1 script=$2
  cat "bench/$script" bench/report.lua >"$OUT/$name.lua"
  printf '%-12s ' "$name"
  wrk -t1 -c"$CONNS" -d"$DURATION" --latency -s "$OUT/$name.lua" "$ORIGIN" | grep '^RESULT'
}
run authorize authorize.lua
export STOP_WHEN_SPENT=1
mint_codes "$ORIGIN" "$OUT/authorize.path" "$CODES" "$OUT/codes_public.txt"
run token token.lua
mint_codes "$ORIGIN" "$OUT/authorize_pkjwt.path" "$CODES" "$OUT/codes_pkjwt.txt"
run token_pkjwt token_pkjwt.lua
echo "server RSS: $(ps -o rss= -p "$PID") KiB"
