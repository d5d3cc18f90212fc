"""Soak run of the shipped cimdgate binary on Redis (started by `bench/soak`; not part of CI).

Everything listens on 127.0.0.1 and runs on this machine, each process started here and stopped
by its PID (side_by_side/run.py's `start` / `stop_all`):

  redis-server          its own, on a free port, persistence off (`--save '' --appendonly no`;
                        SOAK_REDIS_AOF=1: `--appendonly yes --appendfsync everysec`)
  side_by_side/cimd_host.py   HTTPS host of the CIMD documents, certificate from a CA made for
                        this run (side_by_side/tls.py)
  soak_run/upstream.py  the MCP server behind the gateway (one `echo` tool; SOAK_UPSTREAM=fastmcp
                        runs side_by_side/fastmcp_server.py noauth instead)
  cimdgate serve        the binary under test: side_by_side/run.py's `cimdgate_config` (local
                        user, CIMD open mode, rate limits off, `/mcp` → the upstream) with
                        `[store] url = "redis://…"` and the admin listener on a loopback port
  soak_run/load.py      SOAK_PROCS load-generator processes (asyncio + httpx2 from bench/.venv)

After one real flow, code exchange, refresh and tools/call as a sanity check, the generators run
the mix open loop at SOAK_RATE operations/s for SOAK_SECS (load.py says what each operation is
and what counts as an error). Every SOAK_WINDOW_SECS this process samples cimdgate's RSS
(/proc/PID/status VmRSS), Redis' RSS, the CPU used by cimdgate, Redis and the generators, and
merges the generators' window: operations and errors per kind, p50/p99 latency per kind.

Pass, all three:
  1. RSS: every sample taken after the warm-up (SOAK_WARMUP_SECS, default the first 2 minutes,
     or 20% of shorter runs) lies within ±SOAK_RSS_BAND (10%) of the **median** of those samples;
  2. errors: 0 over the whole run (warm-up included);
  3. rate: the operations completed are at least SOAK_MIN_RATE (0.95) of the target — else the
     generator, not the server, set the load and the run says nothing about SOAK_RATE (0 turns
     the check off; the achieved rate is reported either way).
Writes OUT.csv (one row per window), OUT.md (report) and OUT.png (RSS and p99 over time); exit 0
on pass, 1 on fail (each failed condition printed), 2 when the run could not be carried out
(a setup step failed, a process died, a generator stopped sending figures).
"""

import argparse
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import signal
import queue
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
SBS = BENCH / "side_by_side"
sys.path.insert(0, str(SBS))
sys.path.insert(1, str(HERE))
import driver  # noqa: E402
import load  # noqa: E402
import run as sbs  # noqa: E402  (side_by_side/run.py: processes, config, flow helpers)
import tls  # noqa: E402

log = sbs.log
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_num(name, default, cast=float):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


def parse_mix(text):
    """`authorize=40,flow=10,refresh=10,gateway=30` → weights; token exchanges follow flows, so
    their weight is flow's."""
    mix = dict.fromkeys(load.SCHEDULED, 0)
    for part in text.split(","):
        name, _, val = part.partition("=")
        name = name.strip()
        if name not in mix:
            raise SystemExit(f"SOAK_MIX: unknown operation {name!r} (one of {', '.join(mix)}; "
                             "token exchanges follow flows, one per flow)")
        try:
            mix[name] = int(val)
        except ValueError:
            raise SystemExit(f"SOAK_MIX: {part!r} is not NAME=INTEGER") from None
        if mix[name] < 0:
            raise SystemExit(f"SOAK_MIX: {part!r} is negative")
    if not any(mix.values()):
        raise SystemExit("SOAK_MIX: every weight is 0")
    if mix["refresh"] and not mix["flow"]:
        raise SystemExit("SOAK_MIX: refresh needs flow > 0 (refresh tokens come from the "
                         "code exchanges after flows)")
    return mix


# ---------------------------------------------------------------- process metrics

def cpu_ticks(pid):
    """utime + stime of `pid` in clock ticks, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


class Proc:
    """A process whose RSS and CPU are sampled (cimdgate, Redis, the generators)."""

    def __init__(self, pid):
        self.pid = pid
        self.last = cpu_ticks(pid)
        self.at = time.monotonic()

    def rss(self):
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def cpu_percent(self):
        """CPU used since the last call, in % of one core."""
        ticks, now = cpu_ticks(self.pid), time.monotonic()
        if ticks is None or self.last is None:
            return None
        pct = 100.0 * (ticks - self.last) / CLK_TCK / max(1e-6, now - self.at)
        self.last, self.at = ticks, now
        return pct


def redis_command(port, *args):
    """One command over RESP; the reply's text (bulk string or simple/integer reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"*{len(args)}\r\n".encode()
                  + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            if data[:1] in (b"+", b":", b"-") and data.endswith(b"\r\n"):
                break
            if data[:1] == b"$":
                n = int(data[1:data.index(b"\r\n")])
                if len(data) >= data.index(b"\r\n") + 2 + n + 2:
                    break
    if data[:1] == b"$":
        start = data.index(b"\r\n") + 2
        return data[start:start + int(data[1:start - 2])].decode()
    if data[:1] == b"-":
        raise RuntimeError(f"redis {' '.join(args)}: {data.decode().strip()}")
    return data[1:].decode().strip()


def wait_redis(port, proc, workdir, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("redis-server exited:\n" + (workdir / "redis.log").read_text()[-2000:])
        try:
            if redis_command(port, "PING") == "PONG":
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"redis-server did not answer PING on port {port} within {timeout}s")


# ---------------------------------------------------------------- sanity checks (sync)

def post_form(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers=load.FORM)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")[:300]


def sanity(target, client_id, authorize_url):
    """One of each operation, synchronously, before any load: a clear error now beats a run
    full of failures."""
    try:
        with urllib.request.urlopen(authorize_url, timeout=10) as r:
            status = r.status
    except urllib.error.HTTPError as e:
        status = e.code
    if status != 200:
        raise SystemExit(f"GET /authorize without a session answered {status}, expected 200 "
                         "(the login page)")
    codes, errs, _ = driver.mint(authorize_url, sbs.REDIRECT, 1, 1, sbs.USER, sbs.PASSWORD)
    if not codes:
        raise SystemExit(f"no code from a real flow: {errs[:2]}")
    cid, res = quote(client_id, safe=""), quote(target.resource, safe="")
    status, body = post_form(target.token_endpoint, (
        f"grant_type=authorization_code&client_id={cid}&redirect_uri="
        f"{quote(sbs.REDIRECT, safe='')}&code_verifier={sbs.VERIFIER}&resource={res}"
        f"&code={codes[0]}"))
    if status != 200 or "refresh_token" not in body:
        raise SystemExit(f"code exchange answered {status}: {body} (expected 200 with a "
                         "refresh token)")
    status, body = post_form(target.token_endpoint, (
        f"grant_type=refresh_token&client_id={cid}&resource={res}"
        f"&refresh_token={body['refresh_token']}"))
    if status != 200 or "refresh_token" not in body:
        raise SystemExit(f"refresh answered {status}: {body}")
    sbs.mcp_echo(target.resource, body["access_token"])


# ---------------------------------------------------------------- windows

def merge(parts):
    """The generators' dicts for one window → one."""
    out = {"lat": {k: [] for k in load.KINDS}, "err": dict.fromkeys(load.KINDS, 0),
           "missed": dict.fromkeys(load.KINDS, 0), "errmsg": {}, "http": 0,
           "lag_p99_ms": 0.0, "lag_max_ms": 0.0, "browsers": 0}
    for p in parts:
        for k in load.KINDS:
            out["lat"][k] += p["lat"][k]
            out["err"][k] += p["err"][k]
            out["missed"][k] += p["missed"][k]
        for m, n in p["errmsg"].items():
            out["errmsg"][m] = out["errmsg"].get(m, 0) + n
        out["http"] += p["http"]
        out["browsers"] += p["browsers"]
        out["lag_p99_ms"] = max(out["lag_p99_ms"], p["lag_p99_ms"])
        out["lag_max_ms"] = max(out["lag_max_ms"], p["lag_max_ms"])
    return out


def fmt_ms(v):
    return "—" if v is None else f"{v:.2f}"


def kib_mib(v):
    return "—" if v is None else f"{v / 1024:.1f}"


def collect(q, workers, k, deadline):
    """The window `k` of every generator (they send in order), or SystemExit."""
    got = {}
    while len(got) < len(workers):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = [i for i in range(len(workers)) if i not in got]
            raise SystemExit(f"window {k}: no figures from generator(s) {missing} in time")
        try:
            msg = q.get(timeout=min(1.0, remaining))
        except queue.Empty:
            for i, w in enumerate(workers):
                if i not in got and not w.is_alive():
                    raise SystemExit(f"generator {i} exited ({w.exitcode}) during the run")
            continue
        if msg[0] == "failed":
            raise SystemExit(f"generator {msg[1]}: {msg[2]}")
        if msg[0] == "window":
            if msg[2] != k:
                raise SystemExit(f"generator {msg[1]} sent window {msg[2]}, expected {k}")
            got[msg[1]] = msg[3]
    return [got[i] for i in range(len(workers))]


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cimdgate", required=True, help="the binary under test")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--out", required=True, help="path prefix: OUT.csv, OUT.md, OUT.png")
    ap.add_argument("--command", default="bench/soak")
    a = ap.parse_args()

    secs = env_num("SOAK_SECS", 600.0)
    rate = env_num("SOAK_RATE", 300.0)
    window_s = env_num("SOAK_WINDOW_SECS", 10.0)
    procs = env_num("SOAK_PROCS", 2, int)
    browsers = env_num("SOAK_BROWSERS", 8, int)
    max_browsers = env_num("SOAK_MAX_BROWSERS", 64, int)
    timeout = env_num("SOAK_TIMEOUT", 10.0)
    band = env_num("SOAK_RSS_BAND", 0.10)
    min_rate = env_num("SOAK_MIN_RATE", 0.95)
    max_inflight = env_num("SOAK_MAX_INFLIGHT", 512, int)
    mix = parse_mix(os.environ.get("SOAK_MIX", "authorize=40,flow=10,refresh=10,gateway=30"))
    upstream_kind = os.environ.get("SOAK_UPSTREAM", "asyncio")
    aof = os.environ.get("SOAK_REDIS_AOF", "0") == "1"
    if upstream_kind not in ("asyncio", "fastmcp"):
        raise SystemExit(f"SOAK_UPSTREAM={upstream_kind!r}: asyncio or fastmcp")
    if (secs <= 0 or rate <= 0 or window_s <= 0 or procs < 1 or browsers < procs
            or max_browsers < browsers):
        raise SystemExit("need SOAK_SECS, SOAK_RATE, SOAK_WINDOW_SECS > 0, SOAK_PROCS ≥ 1 and "
                         "SOAK_PROCS ≤ SOAK_BROWSERS ≤ SOAK_MAX_BROWSERS")
    windows = max(1, round(secs / window_s))
    duration = windows * window_s
    warmup = env_num("SOAK_WARMUP_SECS", min(120.0, 0.2 * duration))
    # Shares of the total rate: a token exchange follows every flow, so it weighs as much.
    weights = dict(mix, token=mix["flow"])
    total_w = sum(weights.values())
    target = {k: rate * weights[k] / total_w for k in load.KINDS}
    scheduled_rate = rate * (total_w - weights["token"]) / total_w
    settings = dict(secs=duration, windows=windows, rate=rate, window_s=window_s, procs=procs,
                    browsers=browsers, max_browsers=max_browsers,
                    timeout=timeout, band=band, min_rate=min_rate, warmup=warmup, mix=weights,
                    upstream=upstream_kind, aof=aof, max_inflight=max_inflight)

    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    binary = str(Path(a.cimdgate).resolve())
    py = sys.executable

    ca = tls.make_ca_and_leaf(workdir, "cimd.test")
    (workdir / "jwks.json").write_text(json.dumps(tls.Es256Key("soak-es256").jwks()))
    p_redis, p_cimd, p_up, p_cg, p_admin = (sbs.free_port() for _ in range(5))

    redis_argv = ["redis-server", "--port", str(p_redis), "--bind", "127.0.0.1", "--dir",
                  str(workdir), "--save", ""]
    redis_argv += (["--appendonly", "yes", "--appendfsync", "everysec"] if aof
                   else ["--appendonly", "no"])
    redis = sbs.start("redis", redis_argv, workdir)
    host = sbs.start("cimd-host", [py, SBS / "cimd_host.py", str(p_cimd), ca["leaf_pem"],
                                   ca["leaf_key"], workdir / "jwks.json"], workdir)
    if upstream_kind == "fastmcp":
        up = sbs.start("upstream", [py, SBS / "fastmcp_server.py", str(p_up), "noauth"], workdir)
    else:
        up = sbs.start("upstream", [py, HERE / "upstream.py", str(p_up)], workdir)
    wait_redis(p_redis, redis, workdir)
    redis_version = redis_command(p_redis, "INFO", "server").split("redis_version:")[1].split()[0]
    ctx = ssl.create_default_context(cafile=str(ca["ca_pem"]))
    ctx.check_hostname = False
    sbs.wait_http(f"https://127.0.0.1:{p_cimd}/public.json", host, workdir, context=ctx)
    sbs.wait_http(f"http://127.0.0.1:{p_up}/mcp", up, workdir)

    hashed = subprocess.run([binary, "hash-password"], input=sbs.PASSWORD, text=True,
                            capture_output=True, timeout=60)
    if hashed.returncode != 0:
        raise SystemExit(f"{binary} hash-password failed ({hashed.returncode}): "
                         f"{hashed.stderr.strip()[-500:]}")
    pw_hash = hashed.stdout.strip()
    cfg_text = sbs.cimdgate_config(p_cg, "UNUSED", ca["ca_pem"],
                                   f"http://127.0.0.1:{p_up}/mcp").replace("{hash}", pw_hash)
    for old, new in (('url = "embedded:UNUSED"', f'url = "redis://127.0.0.1:{p_redis}/0"'),
                     ('[admin]\nlisten = "off"', f'[admin]\nlisten = "127.0.0.1:{p_admin}"'),
                     ("# written by bench/side_by_side/run.py",
                      "# written by bench/soak_run/soak.py (from side_by_side/run.py's "
                      "cimdgate_config)")):
        if old not in cfg_text:
            raise SystemExit(f"side_by_side/run.py's cimdgate_config changed: no {old!r} in it")
        cfg_text = cfg_text.replace(old, new)
    cfg = workdir / "cimdgate.toml"
    cfg.write_text(cfg_text)
    cg = sbs.start("cimdgate", [binary, "serve", "--config", cfg], workdir)
    base = f"http://127.0.0.1:{p_cg}"
    sbs.wait_http(base + "/.well-known/oauth-authorization-server", cg, workdir)
    sbs.wait_http(f"http://127.0.0.1:{p_admin}/readyz", cg, workdir)

    target_srv = sbs.Target("cimdgate", "cimdgate", base, cg, workdir)
    client_id = f"https://cimd.test:{p_cimd}/public.json"
    authorize_url = base + target_srv.authorize_path(client_id)
    sanity(target_srv, client_id, authorize_url)
    log(f"cimdgate {binary} on {base}, Redis {redis_version} on port {p_redis} "
        f"({'appendonly everysec' if aof else 'persistence off'}), upstream {upstream_kind}: "
        "flow, code exchange, refresh and tools/call ok")

    ctx_mp = mp.get_context("spawn")
    q = ctx_mp.Queue()
    t0_value = ctx_mp.Value("d", 0.0)
    go = ctx_mp.Event()
    workers = []
    base_cfg = dict(procs=procs, rate=scheduled_rate / procs, mix=mix, windows=windows,
                    window_s=window_s, timeout=timeout, max_lag=1.0, max_inflight=max_inflight,
                    refresh_pool=1000, authorize_url=authorize_url, client_id=client_id,
                    token_url=target_srv.token_endpoint, resource=target_srv.resource,
                    mcp_url=target_srv.resource, redirect=sbs.REDIRECT, verifier=sbs.VERIFIER,
                    user=sbs.USER, password=sbs.PASSWORD)
    try:
        for i in range(procs):
            share = browsers // procs + (i < browsers % procs)
            cap = max_browsers // procs + (i < max_browsers % procs)
            w = ctx_mp.Process(target=load.worker, name=f"soak-load-{i}",
                               args=(dict(base_cfg, idx=i, browsers=share, max_browsers=cap),
                                     q, t0_value, go))
            w.start()
            workers.append(w)
        ready, deadline = set(), time.monotonic() + 120
        while len(ready) < procs:
            try:
                msg = q.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise SystemExit("generators not ready within 120 s") from None
                for i, w in enumerate(workers):
                    if not w.is_alive():
                        raise SystemExit(f"generator {i} exited ({w.exitcode}) while seeding")
                continue
            if msg[0] == "failed":
                raise SystemExit(f"generator {msg[1]}: {msg[2]}")
            ready.add(msg[1])
        return soak(a, settings, target, q, workers, t0_value, go,
                    Proc(cg.pid), Proc(redis.pid), [Proc(w.pid) for w in workers],
                    cg, p_redis, redis_version, binary, out, workdir)
    finally:
        for w in workers:
            if w.is_alive():
                w.terminate()
        for w in workers:
            w.join(timeout=10)
            if w.is_alive():
                w.kill()
                w.join(timeout=5)


def soak(a, s, target, q, workers, t0_value, go, cg, redis, gens, cg_popen, p_redis,
         redis_version, binary, out, workdir):
    """The timed part: start the generators, sample every window, judge, write the results."""
    idle = {"cimdgate": cg.rss(), "redis": redis.rss()}
    log(f"RSS before load: cimdgate {kib_mib(idle['cimdgate'])} MiB, Redis "
        f"{kib_mib(idle['redis'])} MiB; {s['procs']} generator(s) ready; "
        f"{s['secs']:.0f} s at {s['rate']:.0f} ops/s, warm-up {s['warmup']:.0f} s")
    load_start = os.getloadavg()
    t0 = time.monotonic() + 1.0
    t0_value.value = t0
    go.set()
    for p in (cg, redis, *gens):
        p.cpu_percent()  # reset the CPU baselines
    rows, all_lat = [], {k: [] for k in load.KINDS}
    totals = {"err": dict.fromkeys(load.KINDS, 0), "missed": dict.fromkeys(load.KINDS, 0),
              "errmsg": {}, "http": 0, "lag_max_ms": 0.0}
    csv = open(f"{out}.csv", "w")
    cols = (["t_s", "cimdgate_rss_kib", "redis_rss_kib", "cimdgate_cpu_pct", "redis_cpu_pct",
             "generator_cpu_pct", "ops", "ops_per_s", "http_requests", "errors", "missed",
             "gen_lag_p99_ms", "p99_all_ms", "browsers", "loadavg_1m"]
            + [f"{k}_{m}" for k in load.KINDS for m in ("n", "errors", "p50_ms", "p99_ms")])
    csv.write(",".join(cols) + "\n")
    try:
        for k in range(s["windows"]):
            boundary = t0 + (k + 1) * s["window_s"]
            time.sleep(max(0.0, boundary - time.monotonic()))
            if cg_popen.poll() is not None:
                raise SystemExit(f"cimdgate exited ({cg_popen.returncode}) during the run:\n"
                                 + (workdir / "cimdgate.log").read_text()[-2000:])
            rss, redis_rss = cg.rss(), redis.rss()
            cpu = (cg.cpu_percent(), redis.cpu_percent(),
                   sum(g.cpu_percent() or 0.0 for g in gens))
            wait = 4 * s["timeout"] + 20 if k == s["windows"] - 1 else 10
            w = merge(collect(q, workers, k, time.monotonic() + wait))
            n = {kind: len(w["lat"][kind]) + w["err"][kind] for kind in load.KINDS}
            ops, errors, missed = sum(n.values()), sum(w["err"].values()), sum(w["missed"].values())
            row = {"t_s": (k + 1) * s["window_s"], "cimdgate_rss_kib": rss,
                   "redis_rss_kib": redis_rss, "cimdgate_cpu_pct": cpu[0],
                   "redis_cpu_pct": cpu[1], "generator_cpu_pct": cpu[2], "ops": ops,
                   "ops_per_s": ops / s["window_s"], "http_requests": w["http"],
                   "errors": errors, "missed": missed, "gen_lag_p99_ms": w["lag_p99_ms"],
                   "browsers": w["browsers"], "loadavg_1m": os.getloadavg()[0]}
            row["p99_all_ms"] = load.percentile([x for kind in load.KINDS
                                                 for x in w["lat"][kind]], 99)
            for kind in load.KINDS:
                row[f"{kind}_n"] = n[kind]
                row[f"{kind}_errors"] = w["err"][kind]
                row[f"{kind}_p50_ms"] = load.percentile(w["lat"][kind], 50)
                row[f"{kind}_p99_ms"] = load.percentile(w["lat"][kind], 99)
                all_lat[kind] += w["lat"][kind]
                totals["err"][kind] += w["err"][kind]
                totals["missed"][kind] += w["missed"][kind]
            for m, c in w["errmsg"].items():
                totals["errmsg"][m] = totals["errmsg"].get(m, 0) + c
            totals["http"] += w["http"]
            totals["lag_max_ms"] = max(totals["lag_max_ms"], w["lag_max_ms"])
            rows.append(row)
            csv.write(",".join("" if row[c] is None else
                               (f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]))
                               for c in cols) + "\n")
            csv.flush()
            log(f"t={row['t_s']:>4.0f}s RSS {kib_mib(rss)} MiB (Redis {kib_mib(redis_rss)}) "
                f"{row['ops_per_s']:>6.0f} ops/s {w['http'] / s['window_s']:>6.0f} HTTP/s "
                f"err {errors} missed {missed} | p99 ms "
                + " ".join(f"{kind} {fmt_ms(row[f'{kind}_p99_ms'])}" for kind in load.KINDS)
                + f" | CPU% cimdgate {cpu[0] or 0:.0f} gen {cpu[2]:.0f} | load "
                f"{row['loadavg_1m']:.1f}")
    finally:
        csv.close()
    for wk in workers:
        wk.join(timeout=30)
    extra = {"redis_used_memory": redis_command(p_redis, "INFO", "memory")
             .split("used_memory_human:")[1].split()[0],
             "redis_keys": redis_command(p_redis, "DBSIZE"), "load_start": load_start,
             "load_end": os.getloadavg(), "redis_version": redis_version}
    verdict, reasons, summary = judge(s, rows, target, totals, all_lat)
    plot(f"{out}.png", s, rows, summary, idle)
    Path(f"{out}.md").write_text(render(a, s, rows, target, totals, all_lat, idle, extra,
                                        verdict, reasons, summary, binary, out))
    print()
    log(f"achieved {summary['achieved']:.0f} ops/s of {s['rate']:.0f} "
        f"({summary['http_rate']:.0f} HTTP requests/s); errors {summary['errors']}, "
        f"missed {summary['missed']}")
    log(f"RSS after warm-up: median {kib_mib(summary.get('rss_median'))} MiB, min "
        f"{kib_mib(summary.get('rss_min'))}, max {kib_mib(summary.get('rss_max'))} "
        f"(band ±{100 * s['band']:.0f}%: {kib_mib(summary.get('rss_lo'))}–"
        f"{kib_mib(summary.get('rss_hi'))} MiB)")
    for r in reasons:
        log(("ok   " if r[0] else "FAIL ") + r[1])
    log(f"{verdict}: {out}.md, {out}.csv, {out}.png")
    return 0 if verdict == "PASS" else 1


# ---------------------------------------------------------------- verdict

def judge(s, rows, target, totals, all_lat):
    post = [r for r in rows if r["t_s"] > s["warmup"] and r["cimdgate_rss_kib"] is not None]
    reasons, summary = [], {}
    completed = sum(len(v) for v in all_lat.values()) + sum(totals["err"].values())
    summary["achieved"] = completed / s["secs"]
    summary["http_rate"] = totals["http"] / s["secs"]
    summary["errors"] = sum(totals["err"].values())
    summary["missed"] = sum(totals["missed"].values())
    if len(post) < 2:
        reasons.append((False, f"RSS: only {len(post)} sample(s) after the {s['warmup']:.0f} s "
                               "warm-up; run longer or shorten SOAK_WARMUP_SECS"))
    else:
        rss = [r["cimdgate_rss_kib"] for r in post]
        med = statistics.median(rss)
        lo, hi = med * (1 - s["band"]), med * (1 + s["band"])
        summary.update(rss_median=med, rss_min=min(rss), rss_max=max(rss), rss_lo=lo,
                       rss_hi=hi, rss_n=len(rss))
        # Least-squares slope, for the report only (not a pass condition).
        ts = [r["t_s"] for r in post]
        mt = statistics.fmean(ts)
        den = sum((t - mt) ** 2 for t in ts)
        summary["rss_slope_kib_min"] = (60 * sum((t - mt) * (v - statistics.fmean(rss))
                                                 for t, v in zip(ts, rss)) / den) if den else 0.0
        out = [r for r in post if not lo <= r["cimdgate_rss_kib"] <= hi]
        reasons.append((not out, f"RSS: {len(rss)} samples after the {s['warmup']:.0f} s warm-up, "
                        f"all within ±{100 * s['band']:.0f}% of their median "
                        f"{med / 1024:.1f} MiB" if not out else
                        f"RSS: {len(out)} of {len(rss)} samples after warm-up outside "
                        f"±{100 * s['band']:.0f}% of the median {med / 1024:.1f} MiB: "
                        + ", ".join(f"t={r['t_s']:.0f}s {r['cimdgate_rss_kib'] / 1024:.1f} MiB"
                                    for r in out[:8])))
    errs = summary["errors"]
    reasons.append((errs == 0, "errors: 0" if errs == 0 else
                    f"errors: {errs} (" + ", ".join(f"{k} {v}" for k, v in totals["err"].items()
                                                    if v) + "); first kinds: "
                    + "; ".join(f"{m} ×{c}" for m, c in sorted(
                        totals["errmsg"].items(), key=lambda x: -x[1])[:3])))
    need = s["min_rate"] * s["rate"]
    rate_ok = summary["achieved"] >= need
    reasons.append((rate_ok, f"rate: {summary['achieved']:.0f} ops/s achieved of "
                    f"{s['rate']:.0f} (need ≥ {100 * s['min_rate']:.0f}%)" + (
                        "" if rate_ok else f"; the generator missed {summary['missed']} "
                        "operations — the load generator, not cimdgate, set the pace: lower "
                        "SOAK_RATE or raise SOAK_PROCS")))
    verdict = "PASS" if all(ok for ok, _ in reasons) else "FAIL"
    return verdict, reasons, summary


# ---------------------------------------------------------------- report

def plot(path, s, rows, summary, idle):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(10, 9), sharex=True,
                                        gridspec_kw={"height_ratios": [3, 3, 2]})
    # t = 0: before the load (after start-up, the sanity checks and the generators' seeding).
    ax1.plot([0, *t], [(v or math.nan) / 1024 for v in
                       [idle["cimdgate"], *(r["cimdgate_rss_kib"] for r in rows)]],
             "o-", ms=3, label="cimdgate RSS (t = 0: before the load)")
    ax1.plot([0, *t], [(v or math.nan) / 1024 for v in
                       [idle["redis"], *(r["redis_rss_kib"] for r in rows)]],
             ".--", ms=2, color="grey", label="redis-server RSS")
    if "rss_median" in summary:
        ax1.axhspan(summary["rss_lo"] / 1024, summary["rss_hi"] / 1024, xmin=0, xmax=1,
                    color="tab:green", alpha=0.12,
                    label=f"±{100 * s['band']:.0f}% of the post-warm-up median")
    for ax in (ax1, ax2, ax3):
        ax.axvspan(0, s["warmup"], color="grey", alpha=0.1)
        ax.grid(alpha=0.3)
    ax1.set_ylabel("RSS (MiB)")
    ax1.set_ylim(bottom=0)
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_title(f"cimdgate soak on Redis: {s['rate']:.0f} ops/s target, "
                  f"{s['secs']:.0f} s (shaded: warm-up)")
    for kind in load.KINDS:
        ax2.plot(t, [r[f"{kind}_p99_ms"] if r[f"{kind}_p99_ms"] is not None else math.nan
                     for r in rows], "o-", ms=2, label=kind)
    ax2.set_yscale("log")
    ax2.set_ylabel(f"p99 latency per {s['window_s']:.0f} s window (ms)")
    ax2.legend(loc="upper right", fontsize=8, ncol=5)
    ax3.plot(t, [r["ops_per_s"] for r in rows], "o-", ms=2, label="operations/s")
    ax3.axhline(s["rate"], color="grey", ls=":", label="target")
    errs = [(r["t_s"], r["ops_per_s"]) for r in rows if r["errors"]]
    if errs:
        ax3.plot(*zip(*errs), "rx", label="window with errors")
    ax3.set_ylabel("ops/s")
    ax3.set_ylim(bottom=0)
    ax3.set_xlabel("seconds since the load started")
    ax3.set_xlim(left=-0.02 * s["secs"], right=s["secs"] * 1.02)
    ax3.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(a, s, rows, target, totals, all_lat, idle, extra, verdict, reasons, summary,
           binary, out):
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    post = [r for r in rows if r["t_s"] > s["warmup"]]

    def mean(key, rs=rows):
        vals = [r[key] for r in rs if r[key] is not None]
        return statistics.fmean(vals) if vals else None

    L = [f"# cimdgate soak on Redis — {dt.datetime.now():%Y-%m-%d %H:%M}", "",
         f"**{verdict}** — " + "; ".join(("" if ok else "FAILED ") + why for ok, why in reasons),
         "", f"- command: `{a.command}`",
         f"- binary: `{binary}` ({Path(binary).stat().st_size:,} bytes)",
         f"- `uname -a`: {' '.join(platform.uname())}", f"- CPU: {cpu} × {os.cpu_count()}",
         "- load average (1/5/15 min) at the start / end: "
         + " / ".join(", ".join(f"{x:.2f}" for x in la)
                      for la in (extra["load_start"], extra["load_end"])),
         f"- Redis {extra['redis_version']}, its own `redis-server` on loopback, "
         + ("`--appendonly yes --appendfsync everysec`" if s["aof"]
            else "persistence off (`--save '' --appendonly no`)"),
         f"- MCP upstream: {'side_by_side/fastmcp_server.py noauth (FastMCP)' if s['upstream'] == 'fastmcp' else 'soak_run/upstream.py (asyncio, one echo tool)'}",
         f"- load: {s['rate']:.0f} operations/s open loop for {s['secs']:.0f} s from "
         f"{s['procs']} Python process(es) (asyncio + httpx2), {s['browsers']} browsers "
         f"(opened on demand up to {s['max_browsers']}; {rows[-1]['browsers']} at the end), "
         f"timeout {s['timeout']:.0f} s; mix (weights) "
         + ", ".join(f"{k} {v}" for k, v in s["mix"].items())
         + f"; windows of {s['window_s']:.0f} s; warm-up {s['warmup']:.0f} s",
         f"- pass: every RSS sample after warm-up within ±{100 * s['band']:.0f}% of their "
         f"median, 0 errors, ≥ {100 * s['min_rate']:.0f}% of the target rate achieved", "",
         f"![RSS, p99 and rate over time]({Path(f'{out}.png').name})", "",
         "## Totals", "",
         "| operation | target /s | achieved /s | completed | errors | missed | p50 ms | p99 ms | max ms |",
         "|---|---|---|---|---|---|---|---|---|"]
    for k in load.KINDS:
        lat = all_lat[k]
        done = len(lat) + totals["err"][k]
        L.append(f"| {k} | {target[k]:.0f} | {done / s['secs']:.1f} | {done:,} | "
                 f"{totals['err'][k]} | {totals['missed'][k]} | "
                 f"{fmt_ms(load.percentile(lat, 50))} | {fmt_ms(load.percentile(lat, 99))} | "
                 f"{fmt_ms(max(lat, default=None))} |")
    L.append(f"| **all** | {s['rate']:.0f} | {summary['achieved']:.1f} | "
             f"{sum(len(v) for v in all_lat.values()) + summary['errors']:,} | "
             f"{summary['errors']} | {summary['missed']} | | | |")
    L += ["", f"HTTP requests: {summary['http_rate']:.0f}/s (a flow is 2 requests with a "
          "signed-in browser). Generator lag (how late operations left, worst process): max "
          f"{totals['lag_max_ms']:.0f} ms."]
    if summary["missed"] or totals["lag_max_ms"] > 1000:
        L.append(f"**The generator fell behind** ({summary['missed']} operations missed): "
                 "latencies include time the operations spent queued in Python, and windows "
                 "with a high load average (other jobs on the machine) take CPU from all of it; "
                 "compare the generators' CPU and the load average in the windows below.")
    L += ["",
          "## Memory and CPU", "",
          "| | cimdgate | redis-server |", "|---|---|---|",
          f"| RSS before load (MiB) | {kib_mib(idle['cimdgate'])} | {kib_mib(idle['redis'])} |",
          f"| RSS at the end of warm-up (MiB) | "
          + " | ".join(kib_mib(next((r[c] for r in reversed(rows) if r['t_s'] <= s['warmup']),
                                   None)) for c in ("cimdgate_rss_kib", "redis_rss_kib")) + " |",
          f"| RSS after warm-up: median / min / max (MiB) | "
          + (f"{kib_mib(summary['rss_median'])} / {kib_mib(summary['rss_min'])} / "
             f"{kib_mib(summary['rss_max'])}" if "rss_median" in summary else "—")
          + " | " + (" / ".join(kib_mib(f([r['redis_rss_kib'] for r in post]))
                                for f in (statistics.median, min, max)) if post else "—") + " |",
          f"| RSS at the end (MiB) | {kib_mib(rows[-1]['cimdgate_rss_kib'])} | "
          f"{kib_mib(rows[-1]['redis_rss_kib'])} |",
          f"| RSS trend after warm-up (least squares) | "
          + (f"{summary['rss_slope_kib_min']:+.0f} KiB/min" if "rss_median" in summary else "—")
          + " | — |",
          f"| CPU, mean over the run (% of one core) | {fmt_pct(mean('cimdgate_cpu_pct'))} | "
          f"{fmt_pct(mean('redis_cpu_pct'))} |", "",
          f"Generators' CPU, mean: {fmt_pct(mean('generator_cpu_pct'))} of one core (all "
          f"processes together). Redis at the end: used_memory {extra['redis_used_memory']}, "
          f"{extra['redis_keys']} keys (refresh-token families accumulate: one per code "
          "exchange, kept for their 30-day lifetime).", ""]
    if totals["errmsg"]:
        L += ["## Errors", "", "| count | first words |", "|---|---|"]
        for m, c in sorted(totals["errmsg"].items(), key=lambda x: -x[1])[:20]:
            L.append(f"| {c} | `{m.replace('|', '/')}` |")
        L.append("")
    L += [f"## Every {s['window_s']:.0f} s window", "",
          "| t (s) | RSS MiB | Redis MiB | ops/s | HTTP/s | err | missed | CPU% cimdgate | "
          "CPU% generators | load 1 min | "
          + " | ".join(f"{k} p50/p99 ms" for k in load.KINDS) + " |",
          "|---" * (10 + len(load.KINDS)) + "|"]
    for r in rows:
        L.append(f"| {r['t_s']:.0f}{' (warm-up)' if r['t_s'] <= s['warmup'] else ''} | "
                 f"{kib_mib(r['cimdgate_rss_kib'])} | {kib_mib(r['redis_rss_kib'])} | "
                 f"{r['ops_per_s']:.0f} | {r['http_requests'] / s['window_s']:.0f} | "
                 f"{r['errors']} | {r['missed']} | {fmt_pct(r['cimdgate_cpu_pct'])} | "
                 f"{fmt_pct(r['generator_cpu_pct'])} | {r['loadavg_1m']:.1f} | "
                 + " | ".join(f"{fmt_ms(r[f'{k}_p50_ms'])} / {fmt_ms(r[f'{k}_p99_ms'])}"
                              for k in load.KINDS) + " |")
    L += ["", f"Raw figures: `{Path(f'{out}.csv').name}`.", ""]
    return "\n".join(L)


def fmt_pct(v):
    return "—" if v is None else f"{v:.0f}%"


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    code = 2
    try:
        code = main()
    except SystemExit as e:
        if isinstance(e.code, str):
            print(f"soak: {e.code}", file=sys.stderr)
            code = 2
        else:
            code = e.code if e.code is not None else 0
    except Exception:  # an unexpected failure is a run not carried out (2), never a FAIL (1)
        import traceback
        traceback.print_exc()
        code = 2
    finally:
        sbs.stop_all()
    sys.exit(code)
