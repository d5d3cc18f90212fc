# Sourced by bench/side-by-side, bench/soak, bench/run-as.sh and bench/run-instances.sh (from the
# repository root): FastMCP (pinned) in bench/.venv — the side-by-side comparison runs it, and the
# code driver (driver.py) uses its httpx2 — and wrk from apt.
FASTMCP_VERSION=4.1.6
VENV=bench/.venv
BENCH_REDIRECT=http://127.0.0.1:9/callback
ensure_venv() {
  if ! "$VENV/bin/python" -c "import fastmcp, sys; sys.exit(fastmcp.__version__ != '$FASTMCP_VERSION')" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "fastmcp==$FASTMCP_VERSION"
  fi
}
# matplotlib (pinned, PyPI) in the same venv: only bench/soak draws a plot, so it is installed
# by its own function rather than by ensure_venv.
MATPLOTLIB_VERSION=3.11.2
ensure_matplotlib() {
  if ! "$VENV/bin/python" -c "import matplotlib, sys; sys.exit(matplotlib.__version__ != '$MATPLOTLIB_VERSION')" 2>/dev/null; then
    "$VENV/bin/pip" install -q "matplotlib==$MATPLOTLIB_VERSION"
  fi
}
ensure_wrk() {
  command -v wrk >/dev/null && return 0
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q wrk >/dev/null; else
    echo "wrk is not installed: sudo apt-get install -y wrk" >&2; exit 2; fi
}
# mint_codes ORIGIN PATH_FILE COUNT OUT_FILE: COUNT codes through real authorize → login →
# consent flows (BENCH_USER / BENCH_PASSWORD from the fixture's env.sh), one per line.
mint_codes() {
  "$VENV/bin/python" bench/side_by_side/driver.py "$1$(cat "$2")" "$BENCH_REDIRECT" "$3" "$4"
}
