#!/usr/bin/env bash
# 1 vs 2 cimdgate instances on one Redis (issue 5), cached GET /authorize and POST /token code
# exchange (public client + PKCE):
#   - 1 instance, 1 wrk:    one wrk, -t1 -c16, against instance A;
#   - 1 instance, 2 wrk:    two wrk processes at once, -t1 -c8 each, both against A (control:
#     a single -t1 wrk is itself a bottleneck for cached /authorize);
#   - 2 instances, 2 wrk:   two wrk processes at once, -t1 -c8 each, one against A and one
#     against B (no load balancer: each wrk is pinned to one instance).
#   req/s of parallel wrk processes are summed.
# Codes are minted right before each token run through real authorize → login → consent flows
# on instance A (bench/side_by_side/driver.py); they live in Redis, so B redeems them too. Each
# wrk process gets its own slice, so no code is presented twice, and stops when its slice is
# spent (STOP_WHEN_SPENT); parallel runs are summed as (requests A + B) / the longer run.
# The embedded store (redb) is single
# process: two instances cannot share it, so this script is Redis only (compare with
# bench/run-as.sh for the embedded figures).
# Starts its own redis-server (loopback, persistence off) on REDIS_PORT unless BENCH_STORE_URL
# is set. Needs wrk and redis-server. Figures go to docs/benchmarks.md.
# Knobs: DURATION (10s; the cap of each token run), CODES (8000 per wrk -c16 run, half per
# wrk -c8 run), REDIS_PORT (6391), BENCH_STORE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CODES=${CODES:-8000}
REDIS_PORT=${REDIS_PORT:-6391}
# shellcheck source=bench/side_by_side/setup.sh
. bench/side_by_side/setup.sh
ensure_venv
ensure_wrk
cargo build --release -q -p cimdgate-server --example bench_server
OUT=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$OUT"
}
trap cleanup EXIT
if [ -z "${BENCH_STORE_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$OUT/redis.log" 2>&1 &
  PIDS+=($!)
  export BENCH_STORE_URL="redis://127.0.0.1:$REDIS_PORT/0"
  sleep 1
fi
case "$BENCH_STORE_URL" in redis*) ;; *) echo "BENCH_STORE_URL must be redis://…" >&2; exit 2;; esac
BIN=target/release/examples/bench_server
wait_ready() { # log pid
  for _ in $(seq 1 1200); do
    grep -q '^READY' "$1" && return 0
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; exit 1; }
    sleep 0.5
  done
  echo "bench_server did not become ready ($1)" >&2; exit 1
}
"$BIN" "$OUT" "$CODES" >"$OUT/a.log" 2>&1 </dev/null &
PIDS+=($!)
PID_A=$!
wait_ready "$OUT/a.log" "$PID_A"
"$BIN" --join "$OUT" >"$OUT/b.log" 2>&1 </dev/null &
PIDS+=($!)
PID_B=$!
wait_ready "$OUT/b.log" "$PID_B"
# shellcheck disable=SC1091
. "$OUT/env.sh"
PORT_A=$CIMDGATE_PORT
PORT_B=$(awk '/^READY/ {print $2}' "$OUT/b.log")
ORIGIN_A=http://127.0.0.1:$PORT_A
export STOP_WHEN_SPENT=1
for s in authorize token; do cat "bench/$s.lua" bench/report.lua >"$OUT/$s.lua"; done
one() { # name port conns [codes]
  CODES_FILE=${4:-} wrk -t1 -c"$3" -d"$DURATION" --latency -s "$OUT/$1.lua" "http://127.0.0.1:$2" \
    | grep '^RESULT'
}
sum() { awk '{ for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
    n += v["requests"]; d = v["requests"] / v["req_per_s"]; if (d > m) m = d }
  END { printf "%.0f", n / m }' "$@"; }
pair() { # label name port1 port2 codes1 codes2: two wrk processes at once, -c8 each
  one "$2" "$3" 8 "$5" >"$OUT/r_1" &
  local w1=$!
  one "$2" "$4" 8 "$6" >"$OUT/r_2" &
  local w2=$!
  wait "$w1" "$w2"
  printf '%-10s %-28s %s req/s  [%s | %s]\n' "$2" "$1" "$(sum "$OUT/r_1" "$OUT/r_2")" \
    "$(cut -d' ' -f2- "$OUT/r_1")" "$(cut -d' ' -f2- "$OUT/r_2")"
}
run() { # name
  local name=$1 p=("" "" "" "" "")
  if [ "$name" = token ]; then
    for i in 0 1 2 3 4; do p[i]=$OUT/codes_part$i; done
    mint_codes "$ORIGIN_A" "$OUT/authorize.path" "$CODES" "${p[0]}"
  fi
  printf '%-10s %-28s ' "$name" "1 instance, 1 wrk -c16"; one "$name" "$PORT_A" 16 "${p[0]}"
  if [ "$name" = token ]; then
    for i in 1 2; do mint_codes "$ORIGIN_A" "$OUT/authorize.path" $((CODES / 2)) "${p[i]}"; done
  fi
  pair "1 instance, 2 wrk -c8 each" "$name" "$PORT_A" "$PORT_A" "${p[1]}" "${p[2]}"
  if [ "$name" = token ]; then
    for i in 3 4; do mint_codes "$ORIGIN_A" "$OUT/authorize.path" $((CODES / 2)) "${p[i]}"; done
  fi
  pair "2 instances, 2 wrk -c8 each" "$name" "$PORT_A" "$PORT_B" "${p[3]}" "${p[4]}"
}
run authorize
run token
echo "RSS: A $(ps -o rss= -p "$PID_A") KiB, B $(ps -o rss= -p "$PID_B") KiB"
