"""Store operations and Redis commands per request type — the counts behind docs/scaling.md.
Started by `bench/store-ops`; see there for the knobs.

For each store variant it starts, all on 127.0.0.1, a fresh redis-server (free port; none for
the embedded store), the shipped `cimdgate serve --config` with `[admin] listen` on loopback,
and bench/fixture.py's CIMD host and FastMCP upstream; then, per request type, it sends N
requests through the real endpoints and diffs

- the store operations, from the admin `/metrics` histogram
  `cimdgate_store_operation_duration_seconds_count{op=…}` (one per `Store` method call,
  crates/server/src/store_metrics.rs) — the CIMD document cache and the rate-limit counters
  use Redis outside the `Store` trait and show only in Redis's own figures;
- Redis's `INFO commandstats` (the ground truth: every command, those run inside Lua scripts
  included) and, from a `MONITOR` connection open during the same pass, the top-level commands
  (round trips) with the key patterns they touch and the commands the scripts ran;

and, in a second pass without `MONITOR` at higher concurrency, the CPU time per request of
Redis's main thread (`INFO cpu`) and of the cimdgate process (`/proc/PID/task/*/schedstat`).

Counts are deterministic (no timing is involved); the CPU figures are CPU time, not
throughput, but they move with the machine's load, cache and frequency — indicative only.
"""

import argparse
import asyncio
import datetime as dt
import hashlib
import http.cookiejar
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH / "side_by_side"))
sys.path.insert(0, str(BENCH))
import driver  # noqa: E402
import fixture  # noqa: E402
import httpx2 as httpx  # noqa: E402
import run  # noqa: E402

HTML = {"accept": "text/html"}
METRIC = "cimdgate_store_operation_duration_seconds_count"
PROBE_COMMANDS = {"info", "echo", "monitor"}  # this script's own, never cimdgate's


def log(msg):
    run.log(msg)


# ---------------------------------------------------------------- Redis: RESP, INFO, MONITOR

def resp_command(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class RedisConn:
    """A minimal RESP client for INFO / ECHO (no dependency to install)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def call(self, *args):
        self.sock.sendall(resp_command(*args))
        return self._read()

    def _read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            return [self._read() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")

    def close(self):
        self.sock.close()


def parse_info(text):
    stats, cpu = {}, {}
    for line in text.splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            kv = dict(f.split("=") for f in fields.split(","))
            stats[name] = (int(kv["calls"]), int(kv["usec"]))
        elif line.startswith("used_cpu_") and ":" in line:
            k, v = line.split(":", 1)
            cpu[k] = float(v)
    return stats, cpu


MON_LINE = re.compile(r'^\+?(\S+) \[(\d+) ([^\]]+)\] (.*)$')
MON_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Monitor:
    """A MONITOR connection read by a thread; `window()` returns the commands between this
    script's two INFO snapshots (and stops)."""

    def __init__(self, port):
        self.conn = RedisConn(port)
        self.conn.sock.settimeout(30)
        self.conn.sock.sendall(resp_command("MONITOR"))
        assert self.conn.f.readline().startswith(b"+OK")
        self.lines = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for _ in range(10_000_000):  # bounded; a pass is a few thousand lines
                line = self.conn.f.readline()
                if not line:
                    return
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self.lines.append(text)
                if "store-ops:end" in text:
                    return
        except OSError:
            return

    def window(self, port):
        end = RedisConn(port)
        end.call("ECHO", "store-ops:end")
        end.close()
        self.thread.join(timeout=30)
        self.conn.close()
        cmds, inside = [], False
        for text in self.lines:
            m = MON_LINE.match(text)
            if not m:
                continue
            args = [a.encode().decode("unicode_escape", "replace") if "\\" in a else a
                    for a in MON_ARG.findall(m.group(4))]
            if not args:
                continue
            name = args[0].lower()
            if name == "info":
                if inside:
                    break
                inside = True
                continue
            if inside and name not in PROBE_COMMANDS:
                cmds.append((m.group(3) == "lua", args))
        return cmds


def script_bodies():
    """Name → code of the Lua scripts of the Redis backend (crates/store/src/redis/scripts.rs,
    read, never copied: bench/run-instances.sh loads two of them into redis-benchmark)."""
    src = (REPO / "crates/store/src/redis/scripts.rs").read_text()
    return dict(re.findall(r'static (\w+): LazyLock<Script> = LazyLock::new\(\|\| \{\s*'
                           r'Script::new\(\s*r"(.*?)",\s*\)', src, re.S))


def script_names():
    """SHA1 → name (the redis crate's `Script` sends EVALSHA of the SHA1 of the code)."""
    return {hashlib.sha1(code.encode()).hexdigest(): name
            for name, code in script_bodies().items()}


HEX = re.compile(r"[0-9a-f]{32,}")
FAMILY = re.compile(r"\{f:[^}]*\}")
WINDOW = re.compile(r"^(.*rl:[^:]+:)\d+(:.*)$")


def key_pattern(key):
    key = FAMILY.sub("{f:<fam>}", HEX.sub("<h>", key))
    m = WINDOW.match(key)
    return f"{m.group(1)}<window>{m.group(2)}" if m else key


def keys_of(args):
    name = args[0].upper()
    if name in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO") and len(args) > 2:
        n = int(args[2])
        return args[3:3 + n]
    if name in ("SCRIPT", "PING", "CLIENT", "HELLO", "SELECT", "READONLY", "WAIT", "ROLE"):
        return []
    if name in ("MGET", "DEL", "EXISTS", "UNLINK"):
        return args[1:]
    return args[1:2]


def round_trips(mon):
    """Top-level commands, a MULTI…EXEC block counted once (the redis crate sends an atomic
    pipeline in one write, so the block is one round trip)."""
    n, in_multi = 0, False
    for lua, args in mon:
        if lua:
            continue
        name = args[0].upper()
        if name == "MULTI":
            in_multi = True
            n += 1
        elif name in ("EXEC", "DISCARD"):
            in_multi = False
        elif not in_multi:
            n += 1
    return n


def describe_top(args, shas):
    name = args[0].upper()
    if name in ("EVALSHA", "EVAL") and len(args) > 1:
        label = shas.get(args[1], args[1][:10]) if name == "EVALSHA" else "EVAL"
        name = f"EVALSHA {label}" if name == "EVALSHA" else "EVAL"
    keys = ", ".join(key_pattern(k) for k in keys_of(args))
    return f"{name} {keys}".strip()


# ---------------------------------------------------------------- the probe

def cimdgate_cpu_ns(pid):
    """CPU time of each live thread of `pid`, ns, by thread id (schedstat: precise, unlike
    /proc/PID/stat's clock ticks)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def cpu_delta_ns(a, b):
    """CPU spent between two `cimdgate_cpu_ns` snapshots by the threads alive at the second
    (a thread started in between counts from zero; one that ended in between — an idle
    blocking-pool thread — is left out, so this can only undercount)."""
    return sum(ns - a.get(tid, 0) for tid, ns in b.items())


class Probe:
    def __init__(self, inst, redis_port):
        self.inst, self.redis_port = inst, redis_port
        self.conn = RedisConn(redis_port) if redis_port else None

    def store_ops(self):
        with urllib.request.urlopen(self.inst.metrics_url, timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line.startswith(METRIC + "{"):
                op = re.search(r'op="([^"]+)"', line).group(1)
                out[op] = out.get(op, 0) + float(line.rsplit(" ", 1)[1])
        return out

    def snapshot(self):
        snap = {"ops": self.store_ops(), "cg_cpu": cimdgate_cpu_ns(self.inst.proc.pid),
                "t": time.monotonic()}
        if self.conn:
            snap["stats"], snap["cpu"] = parse_info(self.conn.call("INFO", "cpu",
                                                                   "commandstats"))
        return snap

    @staticmethod
    def diff(a, b):
        d = {"ops": {k: v - a["ops"].get(k, 0) for k, v in b["ops"].items()
                     if v - a["ops"].get(k, 0)},
             "cg_cpu_ns": cpu_delta_ns(a["cg_cpu"], b["cg_cpu"]), "secs": b["t"] - a["t"]}
        if "stats" in a:
            d["cmds"] = {k: v[0] - a["stats"].get(k, (0, 0))[0] for k, v in b["stats"].items()
                         if k not in PROBE_COMMANDS and v[0] - a["stats"].get(k, (0, 0))[0]}
            main = ("used_cpu_sys_main_thread", "used_cpu_user_main_thread")
            d["redis_cpu_s"] = sum(b["cpu"][k] - a["cpu"][k] for k in main)
        return d


# ---------------------------------------------------------------- browsers and requests

def no_cookies():
    return http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


def client(cookies=True):
    return httpx.AsyncClient(follow_redirects=False, timeout=30.0,
                             cookies=None if cookies else no_cookies())


async def submit(c, url, form, extra):
    fields = [(n, v) for n, v, t in form["controls"] if t == "hidden"] + extra
    action = urljoin(url, form["action"] or url)
    parts = urlsplit(action)
    return await c.post(action, data=dict(fields), headers={
        **HTML, "origin": f"{parts.scheme}://{parts.netloc}"})


async def page_form(c, url):
    r = await c.get(url, headers=HTML)
    form = driver.parse_form(r.text) if r.status_code == 200 else None
    if form is None:
        raise driver.FlowError(f"{r.status_code} at {url[:100]}: {r.text[:200]!r}")
    return form


async def signed_in(url, user, n):
    """`n` browsers signed in as `user` (login form submitted once each)."""
    out = []
    for _ in range(n):
        c = client()
        form = await page_form(c, url)
        r = await submit(c, url, form, [("username", user), ("password", run.PASSWORD)])
        if r.status_code >= 400:
            raise driver.FlowError(f"login as {user}: {r.status_code}")
        out.append(c)
    return out


async def gather_bounded(fn, items, conc):
    """Run fn(item) for every item, `conc` at a time; returns (results, errors)."""
    results, errors = [None] * len(items), []
    it = iter(range(len(items)))

    async def worker():
        for i in it:
            try:
                results[i] = await fn(items[i])
            except Exception as e:  # noqa: BLE001 — counted and reported
                errors.append(f"{type(e).__name__}: {e}"[:300])

    await asyncio.gather(*(worker() for _ in range(max(1, min(conc, len(items))))))
    return results, errors


def code_of(r):
    if r.status_code not in (302, 303):
        raise driver.FlowError(f"consent answered {r.status_code}")
    q = parse_qs(urlsplit(r.headers["location"]).query)
    if "code" not in q:
        raise driver.FlowError(f"redirect without code: {r.headers['location'][:150]}")
    return q["code"][0]


class Bench:
    """Requests against one instance of one store variant."""

    def __init__(self, stack, inst, conc):
        self.s, self.inst, self.conc = stack, inst, conc
        self.http = client(cookies=False)
        self.users = iter(fixture.USERS[1:])
        self.cold = 0

    def url(self, client_id):
        return self.inst.origin + self.s.authorize_path(client_id)

    async def mint(self, client_id, n, user=None):
        """`n` codes through real flows (driver.one_flow) by a user holding no grants yet."""
        user = user or next(self.users)
        url = self.url(client_id)
        sessions = await signed_in(url, user, self.conc)
        try:
            codes, errors = await gather_bounded(
                lambda i: driver.one_flow(sessions[i % len(sessions)], url, run.REDIRECT, user,
                                          run.PASSWORD), list(range(n)), self.conc)
        finally:
            for c in sessions:
                await c.aclose()
        if errors:
            raise RuntimeError(f"minting: {len(errors)} errors, first: {errors[0]}")
        return codes

    async def token(self, data):
        r = await self.http.post(self.inst.origin + "/token", data=data)
        if r.status_code != 200:
            raise RuntimeError(f"/token {r.status_code}: {r.text[:200]}")
        return r.json()

    def exchange_public(self, code):
        return self.token({"grant_type": "authorization_code", "client_id": self.s.public_id,
                           "redirect_uri": run.REDIRECT, "code_verifier": run.VERIFIER,
                           "resource": self.s.resource, "code": code})

    def exchange_pkjwt(self, item):
        code, assertion = item
        return self.token({
            "grant_type": "authorization_code",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion, "redirect_uri": run.REDIRECT,
            "code_verifier": run.VERIFIER, "resource": self.s.resource, "code": code})

    def refresh(self, rt):
        return self.token({"grant_type": "refresh_token", "client_id": self.s.public_id,
                           "refresh_token": rt})

    async def tokens(self, n):
        codes = await self.mint(self.s.public_id, n)
        res, errors = await gather_bounded(self.exchange_public, codes, self.conc)
        if errors:
            raise RuntimeError(f"exchanging: {errors[0]}")
        return res

    async def mcp(self, token):
        r = await self.http.post(self.inst.origin + "/mcp", content=(
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo",'
            b'"arguments":{"text":"hello"}}}'), headers={
            "authorization": f"Bearer {token}", "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "mcp-protocol-version": "2025-11-25"})
        if r.status_code != 200 or "hello" not in r.text:
            raise RuntimeError(f"/mcp {r.status_code}: {r.text[:200]}")

    async def get_ok(self, c, url, want_form=None):
        r = await c.get(url, headers=HTML)
        if r.status_code != 200:
            raise RuntimeError(f"GET /authorize {r.status_code}: {r.text[:200]}")
        if want_form:
            form = driver.parse_form(r.text)
            names = {n for n, _, _ in (form or {"controls": []})["controls"]}
            if want_form not in names:
                raise RuntimeError(f"GET /authorize: no {want_form} form")


class Phase:
    """One request type: `prepare(n)` makes the inputs (not measured), `request(x)` is the
    measured request; `cleanup()` after each pass."""

    def __init__(self, key, label, prepare, request, cleanup=None, note=""):
        self.key, self.label, self.prepare, self.request = key, label, prepare, request
        self.cleanup, self.note = cleanup, note


def phases(b: Bench, grants):
    s = b.s
    pub_url = b.url(s.public_id)
    state = {}

    async def anon_prepare(n):
        return [None] * n

    async def anon(_):
        await b.get_ok(b.http, pub_url, "username")

    async def cold_prepare(n):
        b.cold += 1
        return [f"{s.cimd_origin}/cold/{os.getpid()}-{b.cold}-{i}.json" for i in range(n)]

    async def cold(client_id):
        await b.get_ok(b.http, b.inst.origin + s.authorize_path(client_id), "username")

    async def login_prepare(n):
        items = []
        for _ in range(n):
            c = client()
            items.append((c, await page_form(c, pub_url)))
        state["closing"] = [c for c, _ in items]
        return items

    async def login(item):
        c, form = item
        r = await submit(c, pub_url, form, [("username", run.USER),
                                            ("password", run.PASSWORD)])
        if r.status_code != 200 or "decision" not in r.text:
            raise RuntimeError(f"login POST {r.status_code}")

    async def close_all():
        for c in state.pop("closing", []):
            await c.aclose()

    async def sessions_prepare(n, user=run.USER):
        sessions = await signed_in(pub_url, user, b.conc)
        state["closing"] = sessions
        return [sessions[i % len(sessions)] for i in range(n)]

    async def signed_get(c):
        await b.get_ok(c, pub_url, "decision")

    async def consent_prepare(n):
        sessions = await sessions_prepare(n)
        forms, errors = await gather_bounded(lambda c: page_form(c, pub_url), sessions, b.conc)
        if errors:
            raise RuntimeError(errors[0])
        return list(zip(sessions, forms))

    async def consent(item):
        c, form = item
        return code_of(await submit(c, pub_url, form, [("decision", "approve")]))

    async def full_flow(c):
        return await driver.one_flow(c, pub_url, run.REDIRECT, run.USER, run.PASSWORD)

    async def token_prepare(n):
        return await b.mint(s.public_id, n)

    async def pkjwt_prepare(n):
        codes = await b.mint(s.pkjwt_id, n)
        return [(c, s.es256.assertion(s.pkjwt_id, s.token_endpoint)) for c in codes]

    async def refresh_prepare(n):
        return [t["refresh_token"] for t in await b.tokens(n)]

    async def refresh(rt):
        t = await b.refresh(rt)
        if not t.get("refresh_token"):
            raise RuntimeError("no rotated refresh token")

    async def mcp_first_prepare(n):
        return [t["access_token"] for t in await b.tokens(n)]

    async def mcp_cached_prepare(n):
        tokens = [t["access_token"] for t in await b.tokens(n)]
        _, errors = await gather_bounded(b.mcp, tokens, b.conc * 4)
        if errors:
            raise RuntimeError(errors[0])
        return tokens

    async def heavy_prepare(n):
        user = next(b.users)
        codes = await b.mint(s.public_id, grants, user)
        _, errors = await gather_bounded(b.exchange_public, codes, b.conc)
        if errors:
            raise RuntimeError(errors[0])
        return await sessions_prepare(n, user)

    return [
        Phase("authorize", "GET /authorize, cached client, no session (bench P1: login page)",
              anon_prepare, anon),
        Phase("cold", "GET /authorize, cold CIMD client: fetch + validate (bench P5)",
              cold_prepare, cold),
        Phase("login", "POST login (answers the consent page)", login_prepare, login,
              close_all),
        Phase("authorize_signed_in", "GET /authorize signed in → consent page (user holds no "
              "grant to the client)", sessions_prepare, signed_get, close_all),
        Phase("consent", "POST consent approve → code", consent_prepare, consent, close_all),
        Phase("flow", "one flow signed in: GET + consent POST (driver.one_flow)",
              sessions_prepare, full_flow, close_all),
        Phase("token", "POST /token code exchange, public client + PKCE (bench P2)",
              token_prepare, b.exchange_public),
        Phase("token_pkjwt", "POST /token code exchange, private_key_jwt (bench P3)",
              pkjwt_prepare, b.exchange_pkjwt),
        Phase("refresh", "POST /token refresh_token rotation", refresh_prepare, refresh),
        Phase("mcp_first", "tools/call through the gateway, first use of a token",
              mcp_first_prepare, b.mcp),
        Phase("mcp_cached", "tools/call, token used < 5 s before (verified + revocation "
              "caches)", mcp_cached_prepare, b.mcp),
        Phase("authorize_grants", f"GET /authorize signed in, user holds {grants} grants to "
              "the client", heavy_prepare, signed_get, close_all),
    ]


# ---------------------------------------------------------------- one store variant

async def measure_variant(stack, variant, a, shas):
    redis_port, redis_proc = None, None
    env = dict(variant["env"])
    if variant["redis"]:
        redis_port = run.free_port()
        aof = ["--appendonly", "yes", "--appendfsync", "everysec"] if a.aof else \
            ["--appendonly", "no"]
        rdir = stack.workdir / f"redis-{variant['key']}"
        rdir.mkdir(exist_ok=True)
        redis_proc = run.start(f"redis-{variant['key']}", [
            "redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(rdir), *aof], stack.workdir)
        for _ in range(100):
            try:
                RedisConn(redis_port).close()
                break
            except OSError:
                time.sleep(0.1)
        env["CIMDGATE_STORE__URL"] = f"redis://127.0.0.1:{redis_port}/0"
    (inst,) = stack.start_group(1, env=env, name=f"cimdgate-{variant['key']}")
    probe = Probe(inst, redis_port)
    b = Bench(stack, inst, a.conc)
    out = {"rows": {}, "idle": None}
    try:
        # Warm-up: every script loaded (EVALSHA then finds it), caches filled, one of each.
        tokens = await b.tokens(2)
        await b.refresh(tokens[0]["refresh_token"])
        await b.mcp(tokens[1]["access_token"])
        code = (await b.mint(stack.pkjwt_id, 1))[0]
        await b.exchange_pkjwt((code, stack.es256.assertion(stack.pkjwt_id,
                                                            stack.token_endpoint)))
        for ph in phases(b, a.grants):
            row = {}
            for pass_name, n, conc, monitor in (("count", a.n, a.conc, bool(redis_port)),
                                                ("cpu", a.n_cpu, a.cpu_conc, False)):
                if pass_name == "cpu" and (ph.key == "login" or a.n_cpu == 0):
                    continue  # argon2 per request: a CPU figure of the login is not news
                if ph.key == "login":
                    n = min(n, a.n_login)
                inputs = await ph.prepare(n)
                mon = Monitor(redis_port) if monitor else None
                s0 = probe.snapshot()
                _, errors = await gather_bounded(ph.request, inputs, conc)
                s1 = probe.snapshot()
                d = Probe.diff(s0, s1)
                d.update(n=n, conc=conc, errors=errors)
                if mon:
                    d["monitor"] = mon.window(redis_port)
                if ph.cleanup:
                    await ph.cleanup()
                row[pass_name] = d
                if errors:
                    log(f"  {variant['key']} {ph.key} {pass_name}: {len(errors)} errors, "
                        f"first: {errors[0]}")
            out["rows"][ph.key] = (ph, row)
            c = row["count"]
            log(f"  {variant['key']:<16} {ph.key:<20} ops/req {fmt_counts(c['ops'], c['n'])}"
                + (f" | redis cmds/req {sum(c['cmds'].values()) / c['n']:.2f}"
                   if "cmds" in c else ""))
        if a.idle > 0:
            s0 = probe.snapshot()
            time.sleep(a.idle)
            out["idle"] = Probe.diff(s0, probe.snapshot())
    finally:
        await b.http.aclose()
        inst.stop()
        if redis_proc:
            probe.conn.close()
            fixture.stop_proc(redis_proc)
    return out


# ---------------------------------------------------------------- report

def num(x):
    return f"{x:.2f}".rstrip("0").rstrip(".") if abs(x - round(x)) > 0.004 else f"{round(x)}"


def fmt_counts(counts, n, sep=" · "):
    items = sorted(((k, v / n) for k, v in counts.items() if v), key=lambda kv: (-kv[1], kv[0]))
    return sep.join(f"{k} {num(v)}" for k, v in items)


def total_and(counts, n):
    """"3: get_code 1 · put_grant 1 · redeem_code 1", or "0"."""
    t = num(sum(counts.values()) / n)
    return f"{t}: {fmt_counts(counts, n)}" if t != "0" else "0"


def render(a, results, shas, started):
    binary = Path(a.bin)
    st = binary.stat()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    redis_ver = subprocess.run(["redis-server", "--version"], capture_output=True,
                               text=True).stdout.strip()
    git = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    L = [f"# Store operations per request type — {started:%Y-%m-%d %H:%M}", "",
         f"- binary: `{binary}` ({st.st_size:,} bytes, built "
         f"{dt.datetime.fromtimestamp(st.st_mtime):%Y-%m-%d %H:%M}); working tree `{git}`",
         f"- {redis_ver.split(' sha=')[0]}; persistence: "
         + ("AOF, appendfsync everysec" if a.aof else "off"),
         f"- `uname -a`: {' '.join(platform.uname())}; CPU: {cpu} × {os.cpu_count()}; "
         f"load average at the end {tuple(round(x, 2) for x in os.getloadavg())}",
         f"- count pass: {a.n} requests per type ({a.n_login} logins), {a.conc} at a time, "
         f"with MONITOR; CPU pass: {a.n_cpu} requests, {a.cpu_conc} at a time, without",
         f"- command: `{a.command}`", "",
         "Store ops: `Store` method calls from the admin `/metrics` "
         f"(`{METRIC}`). Redis commands: `INFO commandstats` diff — every command, those "
         "run inside Lua scripts included. Round trips: commands cimdgate sent (MONITOR; a "
         "MULTI…EXEC block counts once, scripts' inner commands not at all). CPU: per "
         "request, Redis main thread (`INFO cpu`) and the whole cimdgate process (schedstat), from the CPU pass; "
         "indicative (CPU time moves with the machine's load). Values are per request; a "
         "fraction means some requests of the type did it (a cache, a once-per-window write) "
         "or background work fell inside the pass.", ""]
    for key, label, res in results:
        rows = res["rows"]
        redis = any("cmds" in r["count"] for _, r in rows.values())
        L += [f"## {label}", ""]
        if redis:
            L += ["| request | store ops | Redis commands (all) | round trips | "
                  "Redis CPU µs | cimdgate CPU µs |", "|---|---|---|---|---|---|"]
        else:
            L += ["| request | store ops | cimdgate CPU µs |", "|---|---|---|"]
        for ph, r in rows.values():
            c, p = r["count"], r.get("cpu")
            err = f" ⚠ {len(c['errors'])} errors" if c["errors"] else ""
            ops = total_and(c["ops"], c["n"])
            cg = num(p["cg_cpu_ns"] / 1000 / p["n"]) if p else "—"
            if redis:
                cmds = total_and(c["cmds"], c["n"])
                rc = num(p["redis_cpu_s"] * 1e6 / p["n"]) if p else "—"
                rt = num(round_trips(c.get("monitor", [])) / c["n"])
                L.append(f"| {ph.label}{err} | {ops} | {cmds} | {rt} | {rc} | {cg} |")
            else:
                L.append(f"| {ph.label}{err} | {ops} | {cg} |")
        if res["idle"]:
            d = res["idle"]
            per_min = 60 / d["secs"]
            line = (f"\nIdle, per minute per instance ({d['secs']:.0f} s measured): store ops "
                    f"{fmt_counts(d['ops'], 1 / per_min) or 'none'}")
            if "cmds" in d:
                line += f"; Redis commands {fmt_counts(d['cmds'], 1 / per_min) or 'none'}"
            L.append(line)
        if redis:
            L += ["", "Round trips and the keys they touch (MONITOR, per request; `<h>` a "
                  "SHA-256, `{f:<fam>}` a token family's hash tag), and the commands the "
                  "scripts ran:", "", "| request | round trips: command keys | inside "
                  "scripts |", "|---|---|---|"]
            for ph, r in rows.values():
                c = r["count"]
                mon = c.get("monitor", [])
                top = Counter(describe_top(x, shas) for lua, x in mon if not lua)
                inner = Counter(x[0].upper() for lua, x in mon if lua)
                L.append(f"| {ph.key} | {fmt_counts(top, c['n'], '<br>') or '—'} | "
                         f"{fmt_counts(inner, c['n']) or '—'} |")
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- main

VARIANTS = {
    "redis": dict(key="redis", redis=True, env={},
                  label="Redis, rate limits off (the benchmarks' configuration)"),
    "redis-limits": dict(key="redis-limits", redis=True,
                         env={"CIMDGATE_LIMITS__PER_IP_PER_SECOND": "1000000",
                              "CIMDGATE_LIMITS__PER_CLIENT_HOST_PER_SECOND": "1000000"},
                         label="Redis, rate limits on (shared per-second counters in Redis, "
                               "as with the product defaults; limits raised so nothing is "
                               "refused)"),
    "embedded": dict(key="embedded", redis=False, env={},
                     label="Embedded store (redb): store ops only"),
}


async def main_async(a):
    started = dt.datetime.now()
    shas = script_names()
    workdir = Path(a.workdir).resolve()
    stack = fixture.Stack(workdir, a.bin, upstream="fastmcp")
    results = []
    for key in a.variants.split(","):
        v = VARIANTS[key]
        log(f"variant {key}")
        results.append((key, v["label"], await measure_variant(stack, v, a, shas)))
    report = render(a, results, shas, started)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(report)
    print(report)
    log(f"written to {a.out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--command", default="")
    a = ap.parse_args()
    a.n = int(os.environ.get("N", "200"))
    a.n_login = int(os.environ.get("N_LOGIN", "40"))
    a.n_cpu = int(os.environ.get("N_CPU", "600"))
    a.conc = int(os.environ.get("CONC", "4"))
    a.cpu_conc = int(os.environ.get("CPU_CONC", "16"))
    a.grants = int(os.environ.get("GRANTS", "50"))
    a.idle = float(os.environ.get("IDLE_SECS", "61"))
    a.aof = os.environ.get("REDIS_AOF", "1") != "0"
    a.variants = os.environ.get("VARIANTS", "redis,redis-limits,embedded")
    asyncio.run(main_async(a))


if __name__ == "__main__":
    run.run_main(main)
