"""cimdgate vs FastMCP 4.1.6, side by side, in one run (started by `bench/side-by-side`).

Everything listens on 127.0.0.1 and runs on this machine: the CIMD host (HTTPS, a CA made for
this run), FastMCP's upstream IdP (`idp.py`), FastMCP without auth (the MCP server both gateways
front), FastMCP with OAuthProxy, and one cimdgate per build (thin LTO `release`, and fat LTO
`dist` when given). The same wrk (`-t1`, same connections and duration) measures each target;
scenarios are interleaved per repetition so drift hits every target alike.

  P1  GET /authorize, cached CIMD client                   wrk -c16, bench/authorize.lua
  P2  POST /token code exchange (public client + PKCE)     codes minted by driver.py, bench/token.lua
  P3  POST /token with an ES256 private_key_jwt assertion  fresh jti each, bench/token_pkjwt.lua
  P4  authenticated tools/call echo                        bench/gateway_echo.lua
  P5  cold CIMD fetch: GET /authorize, new client_id URL each request   cold_authorize.lua, -c4
  flows/s: driver.py's minting rate (full browser flows, sessions reused)
  RSS: each server idle (after start-up and one warm-up flow) and after the run
"""

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from base64 import urlsafe_b64encode
from hashlib import sha256
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
sys.path.insert(0, str(HERE))
import driver  # noqa: E402
import tls  # noqa: E402

VERIFIER = "bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
REDIRECT = "http://127.0.0.1:9/callback"
USER, PASSWORD = "bench", "bench-password"
PROCS: list[subprocess.Popen] = []


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- processes (stopped by PID)

def start(name, argv, workdir, env=None):
    out = open(workdir / f"{name}.log", "wb")
    # CIMDGATE_* variables are config overrides for cimdgate: none leaks in from the shell.
    base = {k: v for k, v in os.environ.items() if not k.startswith("CIMDGATE_")}
    p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env={**base, **(env or {})}, cwd=workdir)
    p.bench_name = name
    PROCS.append(p)
    return p


def stop_all():
    for p in reversed(PROCS):
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 10
    for p in reversed(PROCS):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    PROCS.clear()


def run_main(main, exit_on_signal=130):
    """Run `main` as a bench script's entry point: SIGINT/SIGTERM end it with
    `exit_on_signal`, and every process started through `start` is stopped by PID on any exit."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(exit_on_signal))
    try:
        main()
    finally:
        stop_all()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, workdir, timeout=60.0, context=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.bench_name} exited:\n"
                             + (workdir / f"{proc.bench_name}.log").read_text()[-2000:])
        try:
            urllib.request.urlopen(url, timeout=2, context=context)
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{proc.bench_name} did not answer {url} within {timeout}s")


def cpu_secs(proc):
    """User + system CPU seconds `proc` has used so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(procs, *args):
    """`wrk(*args)` plus the CPU seconds each of `procs` spent during the run, per request
    (`cpu_us_per_req[name]`): what a request costs the server, whatever else shares the
    machine — a steadier measure than req/s when the gap is a fraction of a millisecond."""
    before = {p.bench_name: cpu_secs(p) for p in procs}
    res = wrk(*args)
    n = max(res["requests"], 1)
    res["cpu_us"] = {p.bench_name: 1e6 * (cpu_secs(p) - before[p.bench_name]) / n
                     for p in procs}
    return res


def rss_kib(proc):
    try:
        for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- load runs

def wrk(script, origin, conns, duration, env):
    lua = env["BENCH_DIR"] + f"/{Path(script).stem}.run.lua"
    Path(lua).write_text(Path(script).read_text() + (BENCH / "report.lua").read_text())
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}", "--latency", "-s", lua, origin]
    r = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True,
                       timeout=int(duration.rstrip("s")) + 60)
    for line in r.stdout.splitlines():
        if line.startswith("RESULT"):
            res = dict(kv.split("=") for kv in line.split()[1:])
            out = {k: float(v) for k, v in res.items()}
            out["socket_errors"] = sum(int(x) for x in _socket_errors(r.stdout))
            return out
    raise RuntimeError(f"wrk gave no RESULT: {' '.join(argv)}\n{r.stdout}\n{r.stderr}")


def _socket_errors(text):
    for line in text.splitlines():
        if "Socket errors" in line:
            for part in line.split(",")[0:]:
                num = part.strip().split()[-1]
                if num.isdigit():
                    yield num


# ---------------------------------------------------------------- targets

class Target:
    """One authorization server + gateway under test."""

    def __init__(self, name, kind, base, proc, workdir):
        self.name, self.kind, self.base, self.proc = name, kind, base, proc
        self.dir = workdir / name
        self.dir.mkdir(exist_ok=True)
        self.resource = f"{base}/mcp"
        self.token_endpoint = f"{base}/token"
        self.token = None
        self.rss = {}

    def authorize_path(self, client_id):
        challenge = urlsafe_b64encode(sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
        return ("/authorize?response_type=code&client_id=" + quote(client_id, safe="")
                + "&redirect_uri=" + quote(REDIRECT, safe="") + "&state=s1"
                + f"&code_challenge={challenge}&code_challenge_method=S256"
                + "&resource=" + quote(self.resource, safe="") + "&scope=mcp")

    def env(self, cimd_origin):
        return {"BENCH_DIR": str(self.dir), "REDIRECT_URI": quote(REDIRECT, safe=""),
                "CODE_VERIFIER": VERIFIER, "RESOURCE": quote(self.resource, safe=""),
                "PUBLIC_CLIENT_ID": quote(cimd_origin + "/public.json", safe=""),
                "CIMD_ORIGIN": quote(cimd_origin, safe=""), "STOP_WHEN_SPENT": "1"}


def exchange(target, code, client_id):
    body = (f"grant_type=authorization_code&client_id={quote(client_id, safe='')}"
            f"&redirect_uri={quote(REDIRECT, safe='')}&code_verifier={VERIFIER}"
            f"&resource={quote(target.resource, safe='')}&code={code}").encode()
    req = urllib.request.Request(target.token_endpoint, data=body, headers={
        "content-type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["access_token"]


def mcp_echo(url, token):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "hello"}}}).encode()
    req = urllib.request.Request(url, data=body, headers={
        "authorization": f"Bearer {token}", "content-type": "application/json",
        "accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-11-25"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    if '"hello"' not in text:
        raise SystemExit(f"echo through {url} answered {text[:300]}")


def cimdgate_config(port, data, ca_file, upstream):
    return f"""# written by bench/side_by_side/run.py
[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
[store]
url = "embedded:{data}"
[identity]
mode = "local"
[[identity.users]]
username = "{USER}"
password_hash = "{{hash}}"
[cimd]
mode = "open"
[fetch]
dev_allow_loopback = true
extra_ca_file = "{ca_file}"
resolve = {{ "cimd.test" = "127.0.0.1" }}
per_host_per_minute = 0
[limits]
per_ip_per_second = 0
per_client_host_per_second = 0
[admin]
listen = "off"
[[resources]]
path = "/mcp"
upstream = "{upstream}"
scopes = ["mcp"]
"""


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cimdgate", action="append", required=True, metavar="NAME=BIN")
    ap.add_argument("--out", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--command", default="")
    a = ap.parse_args()

    quick = a.quick
    dur = os.environ.get("DURATION", "3s" if quick else "8s")
    conns = int(os.environ.get("CONNS", "16"))
    cold_conns = int(os.environ.get("COLD_CONNS", "4"))
    reps = int(os.environ.get("REPS", "1" if quick else "3"))
    n_codes = {"fastmcp": int(os.environ.get("CODES_FASTMCP", "200" if quick else "1000")),
               "cimdgate": int(os.environ.get("CODES_CIMDGATE", "300" if quick else "12000"))}
    sessions = int(os.environ.get("BROWSERS", "8"))
    procs = int(os.environ.get("MINT_PROCS", "2"))
    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    # TLS material, the ES256 client key, and FastMCP's trust bundle (system roots + test CA,
    # as a deployment with a private CA would configure it).
    ca = tls.make_ca_and_leaf(workdir, "cimd.test")
    es256 = tls.Es256Key("bench-es256")
    (workdir / "jwks.json").write_text(json.dumps(es256.jwks()))
    bundle = workdir / "fastmcp-ca-bundle.pem"
    sys_ca = ssl.get_default_verify_paths().openssl_cafile
    bundle.write_text((Path(sys_ca).read_text() if sys_ca and Path(sys_ca).is_file() else "")
                      + ca["ca_pem"].read_text())

    py = sys.executable
    p_cimd, p_idp, p_plain, p_fm = free_port(), free_port(), free_port(), free_port()
    cimd_origin = f"https://cimd.test:{p_cimd}"
    host = start("cimd-host", [py, HERE / "cimd_host.py", str(p_cimd), ca["leaf_pem"],
                               ca["leaf_key"], workdir / "jwks.json"], workdir)
    idp = start("idp", [py, HERE / "idp.py", str(p_idp), workdir / "idp-public.pem"], workdir)
    plain = start("fastmcp-noauth", [py, HERE / "fastmcp_server.py", str(p_plain), "noauth"],
                  workdir)
    wait_http(f"http://127.0.0.1:{p_idp}/authorize?redirect_uri=x", idp, workdir)
    fm_env = {"SSL_CERT_FILE": str(bundle)}
    fm = start("fastmcp", [py, HERE / "fastmcp_server.py", str(p_fm), "auth",
                           f"http://127.0.0.1:{p_idp}", workdir / "idp-public.pem"],
               workdir, env=fm_env)
    ctx = ssl.create_default_context(cafile=str(ca["ca_pem"]))
    ctx.check_hostname = False
    wait_http(f"https://127.0.0.1:{p_cimd}/public.json", host, workdir, context=ctx)
    wait_http(f"http://127.0.0.1:{p_plain}/mcp", plain, workdir)
    targets = [Target("fastmcp", "fastmcp", f"http://127.0.0.1:{p_fm}", fm, workdir)]

    builds = [spec.split("=", 1) for spec in a.cimdgate]
    pw_hash = subprocess.run([builds[0][1], "hash-password"], input=PASSWORD, text=True,
                             capture_output=True, check=True).stdout.strip()
    for name, binary in builds:
        port = free_port()
        cfg = workdir / f"{name}.toml"
        cfg.write_text(cimdgate_config(port, workdir / f"{name}-data", ca["ca_pem"],
                                       f"http://127.0.0.1:{p_plain}/mcp")
                       .replace("{hash}", pw_hash))
        proc = start(name, [binary, "serve", "--config", cfg], workdir)
        targets.append(Target(name, "cimdgate", f"http://127.0.0.1:{port}", proc, workdir))
    for t in targets:
        wait_http(t.base + "/.well-known/oauth-authorization-server", t.proc, workdir)

    public_id = cimd_origin + "/public.json"
    pkjwt_id = cimd_origin + "/pkjwt.json"
    # Warm-up and sanity: one real flow and one tools/call per target.
    for t in targets:
        (t.dir / "authorize.path").write_text(t.authorize_path(public_id))
        codes, errs, _ = driver.mint(t.base + t.authorize_path(public_id), REDIRECT, 1, 1,
                                     USER, PASSWORD)
        if not codes:
            raise SystemExit(f"{t.name}: no code from a real flow: {errs[:2]}")
        t.token = exchange(t, codes[0], public_id)
        mcp_echo(t.resource, t.token)
        time.sleep(1)
        t.rss["idle"] = rss_kib(t.proc)
        log(f"{t.name}: flow, token and tools/call ok; idle RSS {t.rss['idle']} KiB")
    mcp_echo(f"http://127.0.0.1:{p_plain}/mcp", "unused")
    direct_rss_idle = rss_kib(plain)

    results: dict[tuple[str, str], list[dict]] = {}
    flows: dict[str, list[float]] = {}
    # CPU µs the server process spent per minted flow (FastMCP's upstream IdP not counted).
    flow_cpu: dict[str, list[float]] = {}
    redeemed = {t.name: 0 for t in targets}

    def record(scenario, name, res):
        results.setdefault((scenario, name), []).append(res)
        log(f"  {scenario:<10} {name:<16} {res['req_per_s']:>9.0f} req/s  p50 "
            f"{res['p50_ms']:.2f} ms  p99 {res['p99_ms']:.2f} ms  errors "
            f"{int(res['errors_non2xx'])}+{res['socket_errors']}")

    for rep in range(1, reps + 1):
        log(f"repetition {rep}/{reps}")
        for t in targets:
            record("P1", t.name, wrk_cpu([t.proc], BENCH / "authorize.lua", t.base, conns,
                                         dur, t.env(cimd_origin)))
        for scenario, client_id in (("P2", public_id), ("P3", pkjwt_id)):
            for t in targets:
                n = n_codes[t.kind]
                cpu_before = cpu_secs(t.proc)
                # cimdgate codes live 60 s (tokens.code_ttl_secs ≤ 60), FastMCP's 300 s: stop
                # minting early enough that the wrk run ends inside that window.
                codes, errs, secs = driver.mint(t.base + t.authorize_path(client_id), REDIRECT,
                                                n, sessions, USER, PASSWORD,
                                                deadline_s=40 if t.kind == "cimdgate" else 200,
                                                procs=procs)
                if errs:
                    log(f"  {t.name}: {len(errs)} flow errors, first: {errs[0][:200]}")
                if not codes:
                    log(f"  {t.name}: no codes, {scenario} skipped")
                    continue
                flows.setdefault(t.name, []).append(len(codes) / secs)
                flow_cpu.setdefault(t.name, []).append(
                    1e6 * (cpu_secs(t.proc) - cpu_before) / len(codes))
                log(f"  minted {len(codes)} codes for {t.name} in {secs:.1f}s "
                    f"({len(codes) / secs:.0f} flows/s, {sessions} browsers)")
                env = t.env(cimd_origin)
                if scenario == "P2":
                    (t.dir / "codes_public.txt").write_text("\n".join(codes) + "\n")
                    script = BENCH / "token.lua"
                else:
                    (t.dir / "codes_pkjwt.txt").write_text("\n".join(codes) + "\n")
                    (t.dir / "assertions.txt").write_text("\n".join(
                        es256.assertion(pkjwt_id, t.token_endpoint) for _ in codes) + "\n")
                    script = BENCH / "token_pkjwt.lua"
                # The run ends when the codes are spent (STOP_WHEN_SPENT) or at the duration.
                record(scenario, t.name, wrk_cpu([t.proc], script, t.base, conns, dur, env))
                redeemed[t.name] += len(codes)
        direct_env = {"BENCH_DIR": str(workdir), "TOKEN": "unused"}
        record("P4", "direct", wrk_cpu([plain], BENCH / "gateway_echo.lua",
                                       f"http://127.0.0.1:{p_plain}", conns, dur, direct_env))
        for t in targets:
            record("P4", t.name, wrk_cpu([t.proc, plain], BENCH / "gateway_echo.lua", t.base,
                                         conns, dur, {"BENCH_DIR": str(t.dir), "TOKEN": t.token}))
        for t in targets:
            env = t.env(cimd_origin) | {"COLD_PREFIX": f"{t.name}-{rep}-{time.time_ns()}"}
            record("P5", t.name, wrk_cpu([t.proc], HERE / "cold_authorize.lua", t.base,
                                         cold_conns, dur, env))
    for t in targets:
        t.rss["after"] = rss_kib(t.proc)
    # Optional (RSS_CODES=100000): cimdgate's RSS after that many more codes, each minted by a
    # real flow and redeemed, in batches that fit the 60 s code lifetime. Not in the default run:
    # at the driver's few hundred flows/s it takes minutes per build.
    extra = int(os.environ.get("RSS_CODES", "0"))
    for t in (t for t in targets if t.kind == "cimdgate" and extra > 0):
        done = 0
        while done < extra:
            codes, errs, _ = driver.mint(t.base + t.authorize_path(public_id), REDIRECT,
                                         min(10000, extra - done), sessions, USER,
                                         PASSWORD, deadline_s=40, procs=procs)
            if not codes:
                log(f"  {t.name}: RSS_CODES stopped: {errs[:1]}")
                break
            (t.dir / "codes_public.txt").write_text("\n".join(codes) + "\n")
            wrk(BENCH / "token.lua", t.base, conns, "60s", t.env(cimd_origin))
            done += len(codes)
        redeemed[t.name] += done
        t.rss[f"after {done:,} more codes"] = rss_kib(t.proc)
        log(f"  {t.name}: RSS after {done} more codes: {t.rss[f'after {done:,} more codes']} KiB")

    report = render(a, targets, results, flows, flow_cpu, redeemed, direct_rss_idle, rss_kib(plain),
                    dict(dur=dur, conns=conns, cold_conns=cold_conns, reps=reps,
                         codes=n_codes, sessions=sessions, procs=procs, quick=quick))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(report)
    print(report)
    log(f"written to {a.out}")


# ---------------------------------------------------------------- report

SCENARIOS = [
    ("P1", "GET /authorize, cached CIMD client"),
    ("P2", "POST /token code exchange (public + PKCE)"),
    ("P3", "POST /token, ES256 private_key_jwt"),
    ("P4", "tools/call echo with auth"),
    ("P5", "cold CIMD fetch (GET /authorize, new client_id)"),
]


def med(rs, key):
    return statistics.median(r[key] for r in rs)


def fmt(rs):
    if not rs:
        return "—"
    errors = int(sum(r["errors_non2xx"] + r["socket_errors"] for r in rs))
    return (f"{med(rs, 'req_per_s'):,.0f} ({med(rs, 'p50_ms'):.2f} / {med(rs, 'p99_ms'):.2f})"
            + (f" err {errors}" if errors else ""))


def ratio(num, den, key="req_per_s", percent=False):
    if not num or not den or med(den, key) == 0:
        return "—"
    r = med(num, key) / med(den, key)
    return f"{100 * r:.1f}%" if percent else f"{r:.1f}×"


def render(a, targets, results, flows, flow_cpu, redeemed, direct_idle, direct_after, s):
    names = [t.name for t in targets]
    cg = [n for n in names if n != "fastmcp"]
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    fm_ver = subprocess.run([sys.executable, "-c", "import fastmcp; print(fastmcp.__version__)"],
                            capture_output=True, text=True).stdout.strip()
    wrk_ver = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    wrk_ver = (wrk_ver.stdout or wrk_ver.stderr).splitlines()[0]
    L = [f"# cimdgate vs FastMCP {fm_ver}, side by side — {dt.datetime.now():%Y-%m-%d %H:%M}",
         "", f"- `uname -a`: {' '.join(platform.uname())}", f"- CPU: {cpu} × {os.cpu_count()}",
         f"- load average at the end: {os.getloadavg()}", f"- load tool: {wrk_ver}",
         f"- command: `{a.command}`",
         *[f"- {spec.split('=', 1)[0]}: `{spec.split('=', 1)[1]}` "
           f"({Path(spec.split('=', 1)[1]).stat().st_size:,} bytes)" for spec in a.cimdgate],
         f"- settings: wrk -t1 -c{s['conns']} -d{s['dur']} (P5: -c{s['cold_conns']}), "
         f"{s['reps']} repetition(s), medians; codes per token run: {s['codes']}; "
         f"{s['sessions']} browsers in {s['procs']} processes minting" + (" — QUICK SMOKE RUN, not a measurement"
                                                if s["quick"] else ""),
         "", "## Ratios (cimdgate / FastMCP, req/s medians)", ""]
    L.append("| scenario | " + " | ".join(f"{n} / fastmcp" for n in cg)
             + (" | " + f"{cg[0]} as % of {cg[1]}" if len(cg) > 1 else "") + " |")
    L.append("|---" * (1 + len(cg) + (1 if len(cg) > 1 else 0)) + "|")
    for key, label in SCENARIOS:
        fmr = results.get((key, "fastmcp"))
        row = [ratio(results.get((key, n)), fmr) for n in cg]
        if len(cg) > 1:
            row.append(ratio(results.get((key, cg[0])), results.get((key, cg[1])),
                             percent=True))
        L.append(f"| {key} {label} | " + " | ".join(row) + " |")
    def own_cpu(key, n):
        rs = results.get((key, n)) or []
        vals = [r["cpu_us"][n] for r in rs if n in r.get("cpu_us", {})]
        return statistics.median(vals) if vals else None
    for key, label in SCENARIOS:
        if key == "P4":
            continue  # FastMCP's auth and MCP share a process: see the P4 table
        fm = own_cpu(key, "fastmcp")
        row = [f"{fm / c:.1f}×" if fm and c else "—"
               for c in (own_cpu(key, n) for n in cg)]
        if len(cg) > 1:
            a_, b_ = own_cpu(key, cg[0]), own_cpu(key, cg[1])
            row.append(f"{100 * b_ / a_:.1f}%" if a_ and b_ else "—")
        L.append(f"| {key} server CPU per request (FastMCP's ÷ cimdgate's) | "
                 + " | ".join(row) + " |")
    def fr(a, b, pct=False):
        if not flows.get(a) or not flows.get(b):
            return "—"
        r = statistics.median(flows[a]) / statistics.median(flows[b])
        return f"{100 * r:.1f}%" if pct else f"{r:.1f}×"
    fl = [fr(n, "fastmcp") for n in cg] + ([fr(cg[0], cg[1], True)] if len(cg) > 1 else [])
    L.append("| full flows/s (reused browser session) | " + " | ".join(fl) + " |")
    def fc(a, b, pct=False):
        if not flow_cpu.get(a) or not flow_cpu.get(b):
            return "—"
        r = statistics.median(flow_cpu[b]) / statistics.median(flow_cpu[a])
        return f"{100 * r:.1f}%" if pct else f"{r:.1f}×"
    L.append("| server CPU per full flow (FastMCP's ÷ cimdgate's) | " + " | ".join(
        [fc(n, "fastmcp") for n in cg] + ([fc(cg[0], cg[1], True)] if len(cg) > 1 else []))
        + " |")
    L += ["", "## Raw figures: req/s median (p50 / p99 ms medians), errors summed", "",
          "| scenario | " + " | ".join(names) + " |", "|---" * (1 + len(names)) + "|"]
    for key, label in SCENARIOS:
        L.append(f"| {key} {label} | " + " | ".join(fmt(results.get((key, n))) for n in names)
                 + " |")
    for key, label in SCENARIOS:
        if key == "P4":
            continue
        L.append(f"| {key} server CPU per request (median) | " + " | ".join(
            f"{own_cpu(key, n):,.0f} µs" if own_cpu(key, n) is not None else "—"
            for n in names) + " |")
    L.append("| full flows/s (minting, median) | " + " | ".join(
        f"{statistics.median(flows[n]):,.0f}" if flows.get(n) else "—" for n in names) + " |")
    L.append("| server CPU per full flow (median) | " + " | ".join(
        f"{statistics.median(flow_cpu[n]):,.0f} µs" if flow_cpu.get(n) else "—" for n in names)
        + " |")
    d = results.get(("P4", "direct"))
    L += ["", f"P4 direct (FastMCP without auth, the upstream both gateways front): {fmt(d)}"
          + (f", {statistics.median(r['cpu_us']['fastmcp-noauth'] for r in d):.0f} µs CPU per "
             "request" if d and all("cpu_us" in r for r in d) else ""), ""]
    L.append("| P4 | " + " | ".join(names) + " |")
    L.append("|---" * (1 + len(names)) + "|")
    L.append("| % of direct throughput | " + " | ".join(
        f"{100 * med(results[('P4', n)], 'req_per_s') / med(d, 'req_per_s'):.0f}%"
        if d and results.get(("P4", n)) else "—" for n in names) + " |")
    L.append("| overhead per request (1/rate − 1/direct rate) | " + " | ".join(
        f"{1000 / med(results[('P4', n)], 'req_per_s') - 1000 / med(d, 'req_per_s'):.3f} ms"
        if d and results.get(("P4", n)) else "—" for n in names) + " |")
    # CPU per request: cimdgate's whole process is the auth layer (the MCP server is the
    # upstream); FastMCP's auth is in-process, so its cost is its CPU per request minus the
    # same server's without auth (the direct run).
    def cpu_med(rs, name):
        vals = [r["cpu_us"][name] for r in rs if name in r.get("cpu_us", {})]
        return statistics.median(vals) if vals else None
    direct_cpu = cpu_med(d, "fastmcp-noauth") if d else None
    def auth_cpu(n):
        rs = results.get(("P4", n))
        if not rs:
            return None
        own = cpu_med(rs, n)
        if own is None:
            return None
        if n == "fastmcp":
            return own - direct_cpu if direct_cpu is not None else None
        return own
    L.append("| CPU µs per request spent on auth (cimdgate: its process; FastMCP: with − "
             "without auth) | " + " | ".join(
                 f"{auth_cpu(n):.0f} µs" if auth_cpu(n) is not None else "—" for n in names)
             + " |")
    L.append("| added p50 latency | " + " | ".join(
        f"{med(results[('P4', n)], 'p50_ms') - med(d, 'p50_ms'):+.2f} ms"
        if d and results.get(("P4", n)) else "—" for n in names) + " |")
    L += ["", "| RSS (KiB) | " + " | ".join(names) + " | fastmcp-noauth |",
          "|---" * (2 + len(names)) + "|",
          "| idle (after start-up + one flow) | " + " | ".join(
              str(t.rss.get("idle")) for t in targets) + f" | {direct_idle} |",
          "| after the run | " + " | ".join(str(t.rss.get("after")) for t in targets)
          + f" | {direct_after} |",
          *[f"| {k} | " + " | ".join(str(t.rss.get(k, "—")) for t in targets) + " | — |"
            for k in dict.fromkeys(k for t in targets for k in t.rss
                                   if k not in ("idle", "after"))],
          "| codes minted and redeemed through real flows | " + " | ".join(
              f"{redeemed[t.name]:,}" for t in targets) + " | — |",
          "", "## Every run", "", "```"]
    for (key, name), rs in sorted(results.items()):
        for i, r in enumerate(rs, 1):
            L.append(f"{key} {name:<16} #{i} " + " ".join(
                f"{k}={v:g}" if not isinstance(v, dict) else
                f"{k}=" + ",".join(f"{pn}:{pv:.0f}" for pn, pv in v.items())
                for k, v in r.items()))
    for n, fs in flows.items():
        L.append(f"flows/s {n:<16} " + " ".join(f"{f:.0f}" for f in fs))
    for n, fs in flow_cpu.items():
        L.append(f"cpu_us/flow {n:<12} " + " ".join(f"{f:.0f}" for f in fs))
    L += ["```", ""]
    return "\n".join(L)


if __name__ == "__main__":
    run_main(main)
