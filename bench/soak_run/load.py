"""One load-generator process of the soak run (started by `soak.py`, one per `SOAK_PROCS`).

Open loop at a fixed rate: operation i is due at t0 + (i + phase) / rate whether or not earlier
ones have answered (no coordinated back-off), kinds interleaved by a smooth weighted
round-robin over the mix. Operations:

  authorize  GET /authorize for the cached CIMD client, no cookies → 200 (the login page)
  flow       a full browser flow, `driver.one_flow`: GET /authorize → consent page → approve →
             302 with `code`, on one of this process's browsers (each keeps its cookie jar, so
             it logs in once and reuses its session; a browser runs one flow at a time). When
             every browser is busy a new one is opened, up to `max_browsers` (its first flow
             includes its login); past that the flow waits for a free browser
  token      POST /token code exchange (public client + PKCE) of the code that flow just got,
             sent as soon as the flow ends (not scheduled on its own: one per successful flow)
             → 200 with an access token and a refresh token
  refresh    POST /token grant_type=refresh_token with the oldest refresh token of this
             process's pool → 200 with a new pair; the new refresh token goes back in the pool
             (rotation: every refresh token is presented once)
  gateway    POST /mcp tools/call echo through cimdgate's gateway with one of the 64 newest
             access tokens (round-robin) → 200 whose body has "hello"

Anything else — another status, a missing field, a timeout, a refused connection — is an error.
An operation the generator could not send is *missed*, not an error: it was due more than
`max_lag` seconds ago, `max_inflight` operations were already in flight, or (refresh) the pool
was empty.

Latency is measured from the moment the operation starts (including waiting for a free browser
or pooled connection) to its last response. Results go to the parent once per window, counted
in the window in which each operation ended; the last window first waits for operations still in
flight (bounded by the request timeout). The clock is `time.monotonic()`, which on Linux is the
same for every process, so all processes and the parent share window boundaries.
"""

import asyncio
import collections
import http.cookiejar
import json
import math
import signal
import time
from urllib.parse import quote

import driver
import httpx2 as httpx

SCHEDULED = ("authorize", "flow", "refresh", "gateway")
KINDS = ("authorize", "flow", "token", "refresh", "gateway")
ECHO = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hello"}}}).encode()
ECHO_HEADERS = {"content-type": "application/json",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2025-11-25"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
ACCESS_TOKENS_KEPT = 64
SEED_FLOWS = 8


def percentile(values, q):
    """Nearest-rank percentile of `values` (q in 0..100); None when empty."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 100)) - 1))
    return s[k]


def weighted_sequence(weights):
    """One period of a smooth weighted round-robin (nginx's): each kind appears `weight` times,
    spread out rather than in runs."""
    g = math.gcd(*weights.values())
    weights = {k: w // g for k, w in weights.items()}
    current = dict.fromkeys(weights, 0)
    total = sum(weights.values())
    out = []
    for _ in range(total):
        for k, w in weights.items():
            current[k] += w
        best = max(current, key=current.get)
        current[best] -= total
        out.append(best)
    return out


class Window:
    """What ended within one sampling window (in this process)."""

    def __init__(self):
        self.lat = {k: [] for k in KINDS}
        self.err = dict.fromkeys(KINDS, 0)
        self.missed = dict.fromkeys(KINDS, 0)
        self.errmsg = collections.Counter()
        self.http = 0
        self.lag = []

    def to_dict(self):
        return {"lat": self.lat, "err": self.err, "missed": self.missed,
                "errmsg": dict(self.errmsg.most_common(20)), "http": self.http,
                "lag_p99_ms": percentile(self.lag, 99) or 0.0,
                "lag_max_ms": max(self.lag, default=0.0)}


class Load:
    def __init__(self, cfg, out_q):
        self.c = cfg
        self.q = out_q
        self.cur = Window()
        self.inflight = {}  # task → kind
        self.refresh_pool = collections.deque(maxlen=cfg["refresh_pool"])
        self.access = collections.deque(maxlen=ACCESS_TOKENS_KEPT)
        self.gw_i = 0
        self.browsers = asyncio.Queue()  # the idle ones
        self.all_browsers = []
        cid, res = quote(cfg["client_id"], safe=""), quote(cfg["resource"], safe="")
        self.code_prefix = (f"grant_type=authorization_code&client_id={cid}"
                            f"&redirect_uri={quote(cfg['redirect'], safe='')}"
                            f"&code_verifier={cfg['verifier']}&resource={res}&code=")
        self.refresh_prefix = f"grant_type=refresh_token&client_id={cid}&resource={res}" \
                              "&refresh_token="

    # ------------------------------------------------------------ clients

    async def _count(self, _response):
        self.cur.http += 1

    def client(self, cookies):
        limits = httpx.Limits(max_connections=self.c["max_inflight"],
                              max_keepalive_connections=self.c["max_inflight"])
        kw = {"cookies": cookies} if cookies is not None else {}
        return httpx.AsyncClient(follow_redirects=False, timeout=self.c["timeout"],
                                 limits=limits, event_hooks={"response": [self._count]}, **kw)

    # ------------------------------------------------------------ operations

    def ok(self, kind, started):
        self.cur.lat[kind].append(round((time.monotonic() - started) * 1000, 3))

    def fail(self, kind, why):
        self.cur.err[kind] += 1
        self.cur.errmsg[f"{kind}: {why[:160]}"] += 1

    def take_tokens(self, kind, resp):
        """Keep the new pair of a 200 /token answer; False (an error recorded) otherwise."""
        if resp.status_code != 200:
            self.fail(kind, f"status {resp.status_code}: {resp.text[:120]!r}")
            return False
        body = resp.json()
        if "access_token" not in body or "refresh_token" not in body:
            self.fail(kind, f"200 without access_token/refresh_token: {sorted(body)}")
            return False
        self.access.append(body["access_token"])
        self.refresh_pool.append(body["refresh_token"])
        return True

    async def authorize(self):
        started = time.monotonic()
        r = await self.api.get(self.c["authorize_url"], headers={"accept": "text/html"})
        if r.status_code == 200:
            self.ok("authorize", started)
        else:
            self.fail("authorize", f"status {r.status_code}")

    async def flow(self):
        started = time.monotonic()
        if self.browsers.empty() and len(self.all_browsers) < self.c["max_browsers"]:
            browser = self.client(None)
            self.all_browsers.append(browser)
        else:
            browser = await self.browsers.get()
        try:
            code = await driver.one_flow(browser, self.c["authorize_url"], self.c["redirect"],
                                         self.c["user"], self.c["password"])
        except driver.FlowError as e:
            self.fail("flow", f"FlowError: {e}")
            return
        finally:
            self.browsers.put_nowait(browser)
        self.ok("flow", started)
        await self.guard("token", self.token(code))

    async def token(self, code):
        started = time.monotonic()
        r = await self.api.post(self.c["token_url"], content=self.code_prefix + code,
                                headers=FORM)
        if self.take_tokens("token", r):
            self.ok("token", started)

    async def refresh(self):
        if not self.refresh_pool:
            self.cur.missed["refresh"] += 1
            return
        rt = self.refresh_pool.popleft()
        started = time.monotonic()
        r = await self.api.post(self.c["token_url"], content=self.refresh_prefix + rt,
                                headers=FORM)
        if self.take_tokens("refresh", r):
            self.ok("refresh", started)

    async def gateway(self):
        self.gw_i += 1
        token = self.access[self.gw_i % len(self.access)]
        started = time.monotonic()
        r = await self.api.post(self.c["mcp_url"], content=ECHO,
                                headers={**ECHO_HEADERS, "authorization": f"Bearer {token}"})
        if r.status_code == 200 and b'"hello"' in r.content:
            self.ok("gateway", started)
        else:
            self.fail("gateway", f"status {r.status_code}: {r.text[:120]!r}")

    async def guard(self, kind, coro):
        """Run one operation; transport failures and timeouts are errors of that kind."""
        try:
            await coro
        except httpx.HTTPError as e:
            self.fail(kind, f"{type(e).__name__}: {e}")
        except ValueError as e:  # a 200 whose body is not JSON
            self.fail(kind, f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------ schedule

    async def schedule(self, t0, end):
        c = self.c
        rate = c["rate"]
        seq = weighted_sequence({k: c["mix"][k] for k in SCHEDULED if c["mix"][k] > 0})
        phase = c["idx"] / c["procs"]  # processes interleave instead of firing together
        ops = {"authorize": self.authorize, "flow": self.flow, "refresh": self.refresh,
               "gateway": self.gateway}
        i = 0
        offset = c["idx"] * len(seq) // c["procs"]
        while True:
            now = time.monotonic()
            if now >= end:
                return
            while True:
                due = t0 + (i + phase) / rate
                if due > now or due >= end:
                    break
                kind = seq[(i + offset) % len(seq)]
                i += 1
                lag = now - due
                if lag > c["max_lag"] or len(self.inflight) >= c["max_inflight"]:
                    self.cur.missed[kind] += 1
                    continue
                self.cur.lag.append(lag * 1000)
                task = asyncio.create_task(self.guard(kind, ops[kind]()))
                self.inflight[task] = kind
                task.add_done_callback(lambda t: self.inflight.pop(t, None))
            await asyncio.sleep(max(0.0, t0 + (i + phase) / rate - time.monotonic()))

    async def flush_windows(self, t0):
        c = self.c
        for k in range(c["windows"]):
            boundary = t0 + (k + 1) * c["window_s"]
            await asyncio.sleep(max(0.0, boundary - time.monotonic()))
            if k == c["windows"] - 1:
                # The last window also takes the operations still in flight at the end: a flow
                # plus its token exchange is a few requests, each bounded by the timeout.
                deadline = time.monotonic() + 4 * c["timeout"] + 5
                while self.inflight and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                for task, kind in list(self.inflight.items()):
                    self.fail(kind, "still in flight after the drain deadline")
                    task.cancel()
            w, self.cur = self.cur, Window()
            self.q.put(("window", c["idx"], k, dict(w.to_dict(), browsers=len(self.all_browsers))))

    # ------------------------------------------------------------ main

    async def run(self, t0_value, go):
        c = self.c
        no_cookies = http.cookiejar.CookieJar(
            policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        self.api = self.client(no_cookies)
        browsers = [self.client(None) for _ in range(c["browsers"])]
        self.all_browsers = list(browsers)
        try:
            # Seed: SEED_FLOWS flows and code exchanges per browser (the first logs the browser
            # in); the refresh pool and the access tokens start from these, so refreshes
            # in flight at the start never find the pool empty.
            for b in browsers:
                for _ in range(SEED_FLOWS):
                    code = await driver.one_flow(b, c["authorize_url"], c["redirect"],
                                                 c["user"], c["password"])
                    r = await self.api.post(c["token_url"], content=self.code_prefix + code,
                                            headers=FORM)
                    if not self.take_tokens("token", r):
                        raise RuntimeError(f"seed code exchange failed: {self.cur.errmsg}")
                self.browsers.put_nowait(b)
        except (driver.FlowError, httpx.HTTPError, RuntimeError, ValueError) as e:
            self.q.put(("failed", c["idx"], f"seeding: {type(e).__name__}: {e}"))
            return 1
        self.cur = Window()
        self.q.put(("ready", c["idx"], None, None))
        if not await asyncio.to_thread(go.wait, 300):
            self.q.put(("failed", c["idx"], "no start signal within 300 s"))
            return 1
        t0 = t0_value.value
        end = t0 + c["windows"] * c["window_s"]
        await asyncio.gather(self.schedule(t0, end), self.flush_windows(t0))
        for cl in [self.api, *self.all_browsers]:
            await cl.aclose()
        return 0


def worker(cfg, out_q, t0_value, go):
    """Process entry point (multiprocessing, spawn)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it terminates us by PID
    raise SystemExit(asyncio.run(Load(cfg, out_q).run(t0_value, go)))
