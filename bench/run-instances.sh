#!/usr/bin/env bash
# 1, 2 and 3 cimdgate instances on one Redis (issue 5; docs/scaling.md), cached GET /authorize
# and POST /token code exchange (public client + PKCE), then Redis's own capacity:
#   - 1 instance, 1 wrk:    one wrk, -t1 -c16, against instance A;
#   - 1 instance, 2 wrk:    two wrk processes at once, -t1 -c8 each, both against A (control:
#     a single -t1 wrk is itself a bottleneck for cached /authorize);
#   - 2 instances, 2 wrk:   two wrk processes at once, -t1 -c8 each, one against A and one
#     against B (no load balancer: each wrk is pinned to one instance);
#   - 1 instance, 3 wrk:    three wrk processes at once, -c8 each, all against A (control);
#   - 3 instances, 3 wrk:   three wrk processes at once, -c8 each, one per instance.
#   req/s of parallel wrk processes are summed; each line also gives the CPU time per request
#   of Redis's main thread (INFO cpu) and of the instances (/proc/PID/stat), and Redis's busy
#   share of one core during the run.
#   - Redis capacity: redis-benchmark on the same Redis for the commands the store sends most
#     (GET, SET … PX, EVALSHA of the store's own RECORD_JTI and COUNT_HIT scripts, read from
#     crates/store/src/redis/scripts.rs), 3 connections × 16 commands in flight (3 instances'
#     multiplexed connections); and the Redis main-thread time of one HGETALL of an inventory
#     hash of RB_INV_CLIENTS 1 KiB entries (what every instance reads once a minute).
# The instances are the shipped binary, `cimdgate serve --config` (bench/fixture.py: one
# configuration — local user, CIMD open mode, rate limits off — the same public_url for all,
# each on its own --listen port; the HTTPS CIMD host is side_by_side/cimd_host.py).
# Codes are minted right before each token run through real authorize → login → consent flows
# on instance A (bench/side_by_side/driver.py); they live in Redis, so B and C redeem them too.
# Each wrk process gets its own slice (CODES in all per run, split evenly), so no code is
# presented twice, and stops when its slice is spent (STOP_WHEN_SPENT); parallel runs are
# summed as (requests of all) / the longest run. Each batch is minted by a user holding no
# grant yet (fixture.py lists u00…u63).
# The embedded store (redb) is single process, so this script is Redis only (bench/run-as.sh
# and bench/side-by-side measure the embedded store).
# Starts its own redis-server (loopback, persistence off) on a free port (REDIS_PORT to choose)
# unless BENCH_STORE_URL is set (then no Redis CPU figures and no redis-benchmark). Needs wrk,
# redis-server, redis-cli and redis-benchmark. Figures go to docs/scaling.md.
# Takes BENCH_CIMDGATE_BIN (a prebuilt binary; otherwise builds target/release/cimdgate).
# Knobs: DURATION (10s; the cap of each token run), CODES (8000 per run), REDIS_PORT,
# BENCH_STORE_URL, RB_REQUESTS (500000 per redis-benchmark command; 0 skips all of Redis's
# capacity), RB_INV_CLIENTS (100000: entries of the synthetic inventory hash; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CODES=${CODES:-8000}
RB_REQUESTS=${RB_REQUESTS:-500000}
RB_INV_CLIENTS=${RB_INV_CLIENTS:-100000}
# shellcheck source=bench/side_by_side/setup.sh
. bench/side_by_side/setup.sh
ensure_venv
ensure_wrk
if [ -z "${BENCH_CIMDGATE_BIN:-}" ]; then
  cargo build --release -q -p cimdgate
  BENCH_CIMDGATE_BIN=target/release/cimdgate
fi
BIN=$(realpath "$BENCH_CIMDGATE_BIN")
OUT=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$OUT"
}
trap cleanup EXIT
REDIS_CLI=()
if [ -z "${BENCH_STORE_URL:-}" ]; then
  command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 2; }
  REDIS_PORT=${REDIS_PORT:-$("$VENV/bin/python" -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    >"$OUT/redis.log" 2>&1 &
  PIDS+=($!)
  REDIS_CLI=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
  for _ in $(seq 1 50); do "${REDIS_CLI[@]}" ping >/dev/null 2>&1 && break; sleep 0.2; done
  export BENCH_STORE_URL="redis://127.0.0.1:$REDIS_PORT/0"
fi
case "$BENCH_STORE_URL" in redis*) ;; *) echo "BENCH_STORE_URL must be redis://…" >&2; exit 2;; esac
"$VENV/bin/python" bench/fixture.py --bin "$BIN" --instances 3 --store-url "$BENCH_STORE_URL" \
  --out "$OUT/fx" --max-seconds 3600 >"$OUT/fixture.log" 2>&1 </dev/null &
PIDS+=($!)
FIXTURE=$!
for _ in $(seq 1 240); do
  grep -q '^READY' "$OUT/fixture.log" && break
  kill -0 "$FIXTURE" 2>/dev/null || { cat "$OUT/fixture.log" >&2; exit 1; }
  sleep 0.5
done
grep -q '^READY' "$OUT/fixture.log" || { echo "fixture did not become ready" >&2; exit 1; }
# shellcheck disable=SC1091
. "$OUT/fx/env.sh"
read -ra PORT <<<"$CIMDGATE_PORTS"
read -ra INSTANCE_PIDS <<<"$CIMDGATE_PIDS"
read -ra USERS <<<"$BENCH_USERS"
ORIGIN_A=http://127.0.0.1:${PORT[0]}
echo "binary: $BIN ($(stat -c %s "$BIN") bytes, built $(date -r "$BIN" '+%F %T')); store $BENCH_STORE_URL"
echo "instances: ${PORT[*]} (PIDs ${INSTANCE_PIDS[*]}); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
export STOP_WHEN_SPENT=1
for s in authorize token; do cat "bench/$s.lua" bench/report.lua >"$OUT/$s.lua"; done
NEXT_USER=0
mint() { # out_file count: codes through real flows on A, by a user holding no grant yet
  BENCH_USER=${USERS[NEXT_USER]} mint_codes "$ORIGIN_A" "$OUT/fx/authorize.path" "$2" "$1"
  NEXT_USER=$(((NEXT_USER + 1) % ${#USERS[@]}))
}
redis_cpu() { # Redis main-thread CPU seconds so far (empty without our own Redis)
  [ ${#REDIS_CLI[@]} -gt 0 ] || return 0
  "${REDIS_CLI[@]}" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_(sys|user)_main_thread:/ { s += $2 } END { printf "%.6f", s }'
}
instances_cpu() { # CPU seconds of the three instances so far (/proc/PID/stat utime + stime)
  local t=0 p
  for p in "${INSTANCE_PIDS[@]}"; do
    t=$((t + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.6f", t / hz }'
}
one() { # name port conns [codes_file]
  CODES_FILE=${4:-} wrk -t1 -c"$3" -d"$DURATION" --latency -s "$OUT/$1.lua" "http://127.0.0.1:$2" \
    | grep '^RESULT'
}
sum() { awk '{ for (i = 1; i <= NF; i++) { split($i, a, "="); v[a[1]] = a[2] }
    n += v["requests"]; d = v["requests"] / v["req_per_s"]; if (d > m) m = d }
  END { printf "%.0f %d %.3f", n / m, n, m }' "$@"; }
group() { # label name conns "port…" "codes_file…": one wrk process per port, at once
  local label=$1 name=$2 conns=$3 ports codes i pids=() files=() r0 r1 c0 c1 t0 t1
  read -ra ports <<<"$4"
  read -ra codes <<<"${5:-}"
  r0=$(redis_cpu); c0=$(instances_cpu); t0=$(date +%s.%N)
  for i in "${!ports[@]}"; do
    one "$name" "${ports[i]}" "$conns" "${codes[i]:-}" >"$OUT/r_$i" &
    pids+=($!)
    files+=("$OUT/r_$i")
  done
  wait "${pids[@]}"
  r1=$(redis_cpu); c1=$(instances_cpu); t1=$(date +%s.%N)
  read -r rate n secs <<<"$(sum "${files[@]}")"
  local cpu
  cpu=$(awk -v r0="${r0:-0}" -v r1="${r1:-0}" -v c0="$c0" -v c1="$c1" -v n="$n" \
    -v t0="$t0" -v t1="$t1" -v has="${#REDIS_CLI[@]}" 'BEGIN {
      if (has > 0) printf "redis %.1f µs/req, %.0f%% of a core; ", (r1 - r0) * 1e6 / n, 100 * (r1 - r0) / (t1 - t0)
      printf "instances %.0f µs/req", (c1 - c0) * 1e6 / n }')
  printf '%-10s %-30s %7s req/s  [%s]  [%s]\n' "$name" "$label" "$rate" "$cpu" \
    "$(for f in "${files[@]}"; do cut -d' ' -f2- "$f" | tr '\n' ';'; done)"
}
run() { # name
  local name=$1 spec label k ports codes i
  for spec in "1 instance, 1 wrk -c16|16|0" "1 instance, 2 wrk -c8 each|8|0 0" \
    "2 instances, 2 wrk -c8 each|8|0 1" "1 instance, 3 wrk -c8 each|8|0 0 0" \
    "3 instances, 3 wrk -c8 each|8|0 1 2"; do
    IFS='|' read -r label k idx <<<"$spec"
    read -ra idx <<<"$idx"
    ports=""
    codes=""
    for i in "${!idx[@]}"; do
      ports+="${PORT[idx[i]]} "
      if [ "$name" = token ]; then
        mint "$OUT/codes_$i" $((CODES / ${#idx[@]}))
        codes+="$OUT/codes_$i "
      fi
    done
    group "$label" "$name" "$k" "$ports" "$codes"
  done
}
run authorize
run token
echo "RSS: $(for p in "${INSTANCE_PIDS[@]}"; do printf '%s KiB ' "$(ps -o rss= -p "$p")"; done)"
if [ ${#REDIS_CLI[@]} -gt 0 ] && [ "$RB_REQUESTS" -gt 0 ]; then
  command -v redis-benchmark >/dev/null || { echo "redis-benchmark is not installed" >&2; exit 2; }
  script() { "$VENV/bin/python" -c 'import sys; sys.path.insert(0, "bench")
import store_ops; print(store_ops.script_bodies()[sys.argv[1]], end="")' "$1"; }
  SHA_JTI=$("${REDIS_CLI[@]}" script load "$(script RECORD_JTI)")
  SHA_HIT=$("${REDIS_CLI[@]}" script load "$(script COUNT_HIT)")
  FAR=$(($(date +%s) + 3600))
  echo "Redis capacity (redis-benchmark, 3 connections x 16 in flight, $RB_REQUESTS requests each):"
  rb() { # the final summary line, script SHAs named
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 3 -P 16 -n "$RB_REQUESTS" -r 1000000 -q \
      "$@" | tr '\r' '\n' | grep -v '^$' | tail -1 |
      sed -e "s/$SHA_JTI/RECORD_JTI/" -e "s/$SHA_HIT/COUNT_HIT/" -e 's/^/  /'
  }
  rb GET 'rb:code:__rand_int__'
  rb SET 'rb:code:__rand_int__' family-0123456789abcdef PX 60000
  rb EVALSHA "$SHA_JTI" 1 'rb:jti:__rand_int__' 0 "$FAR" "${FAR}000"
  rb EVALSHA "$SHA_HIT" 1 'rb:rl:ip:1:127.0.0.1' 1000
  # The inventory is one hash ({inv}:rec) that every instance reads whole once a minute
  # (list_client_records, the client gauge): HGETALL of RB_INV_CLIENTS entries of 1 KiB.
  if [ "$RB_INV_CLIENTS" -gt 0 ]; then
    "${REDIS_CLI[@]}" eval "local v = string.rep('x', 1024)
      for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'https://c' .. i .. '.example/cimd.json', v) end
      return redis.call('HLEN', KEYS[1])" 1 rb:inv "$RB_INV_CLIENTS" >/dev/null
    echo "  rb:inv: $RB_INV_CLIENTS entries, $("${REDIS_CLI[@]}" memory usage rb:inv) bytes"
    "${REDIS_CLI[@]}" config resetstat >/dev/null
    redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 1 -n 5 -q HGETALL rb:inv >/dev/null
    "${REDIS_CLI[@]}" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_hgetall:/ {
      printf "  HGETALL rb:inv: %.1f ms of Redis main thread per call\n", $7 / 1000 }'
    "${REDIS_CLI[@]}" del rb:inv >/dev/null
  fi
fi
