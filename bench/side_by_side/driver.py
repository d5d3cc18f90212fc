"""The browser stand-in that mints authorization codes through each server's real flow:
GET /authorize → (login, once per browser) → consent page → Approve → (FastMCP: upstream IdP →
/auth/callback) → 302 to the client's redirect_uri with `code`. Nothing is written into a store
by hand.

Each of `sessions` browsers keeps its own cookie jar and runs its flows one after another, so
the login (cimdgate: local user; FastMCP: none — the IdP auto-approves) happens once per browser
and every later flow reuses the session, as a user authorizing several clients would. The
consent page is shown and approved every time (neither server remembers consent here).
"""

import asyncio
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2 as httpx

MAX_STEPS = 10


class FormParser(HTMLParser):
    """The first <form>: action, method, and its named inputs/buttons (name, value, type)."""

    def __init__(self):
        super().__init__()
        self.form = None
        self.done = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.form is None:
            self.form = {"action": a.get("action"), "method": (a.get("method") or "get").lower(),
                         "controls": []}
        elif tag in ("input", "button") and self.form is not None and not self.done:
            if a.get("name"):
                self.form["controls"].append(
                    (a["name"], a.get("value") or "", (a.get("type") or "text").lower()))

    def handle_endtag(self, tag):
        if tag == "form":
            self.done = True


def parse_form(html):
    p = FormParser()
    p.feed(html)
    return p.form


class FlowError(Exception):
    pass


async def one_flow(client, authorize_url, redirect_prefix, user, password):
    """Drive one authorization; returns the code."""
    url = authorize_url
    resp = await client.get(url, headers={"accept": "text/html"})
    for _ in range(MAX_STEPS):
        if resp.is_redirect:
            loc = urljoin(url, resp.headers["location"])
            if loc.startswith(redirect_prefix):
                q = parse_qs(urlsplit(loc).query)
                if "code" not in q:
                    raise FlowError(f"redirect without code: {loc[:200]}")
                return q["code"][0]
            url = loc
            resp = await client.get(url, headers={"accept": "text/html"})
            continue
        form = parse_form(resp.text) if resp.status_code == 200 else None
        if form is None or form["method"] != "post":
            raise FlowError(f"{resp.status_code} at {url[:120]}: {resp.text[:300]!r}")
        names = {n for n, _, _ in form["controls"]}
        fields = [(n, v) for n, v, t in form["controls"] if t == "hidden"]
        if "username" in names and "password" in names:
            fields += [("username", user), ("password", password)]
        elif "decision" in names:  # cimdgate
            fields.append(("decision", "approve"))
        elif "action" in names:  # FastMCP
            fields.append(("action", "approve"))
        else:
            raise FlowError(f"unknown form at {url[:120]}: {sorted(names)}")
        action = urljoin(url, form["action"] or url)
        parts = urlsplit(action)
        resp = await client.post(action, data=dict(fields), headers={
            "accept": "text/html", "origin": f"{parts.scheme}://{parts.netloc}"})
        url = action
    raise FlowError(f"no code after {MAX_STEPS} steps")


async def mint_async(authorize_url, redirect_prefix, n, sessions, user, password, deadline_s):
    codes, errors = [], []
    remaining = [n]
    stop_at = time.monotonic() + deadline_s

    async def browser():
        async with httpx.AsyncClient(follow_redirects=False, timeout=30.0) as client:
            while remaining[0] > 0 and time.monotonic() < stop_at:
                remaining[0] -= 1
                try:
                    codes.append(await one_flow(client, authorize_url, redirect_prefix,
                                                user, password))
                except (FlowError, httpx.HTTPError) as e:
                    errors.append(str(e))
                    if len(errors) > 20:
                        return

    start = time.monotonic()
    await asyncio.gather(*(browser() for _ in range(sessions)))
    return codes, errors, time.monotonic() - start


def _mint_part(args):
    return asyncio.run(mint_async(*args))


def mint(authorize_url, redirect_prefix, n, sessions=8, user="bench", password="bench-password",
         deadline_s=120.0, procs=1):
    """Mint up to `n` codes; returns (codes, errors, seconds). With `procs` > 1 the browsers are
    spread over that many processes (one Python process cannot drive cimdgate fast enough to
    fill a 60 s code lifetime with a useful number of codes)."""
    if procs <= 1 or n < 2 * procs:
        return _mint_part((authorize_url, redirect_prefix, n, sessions, user, password,
                           deadline_s))
    from concurrent.futures import ProcessPoolExecutor

    parts = [(authorize_url, redirect_prefix, n // procs + (i < n % procs),
              max(1, sessions // procs), user, password, deadline_s) for i in range(procs)]
    start = time.monotonic()
    with ProcessPoolExecutor(max_workers=procs) as pool:
        results = list(pool.map(_mint_part, parts))
    codes = [c for r in results for c in r[0]]
    errors = [e for r in results for e in r[1]]
    return codes, errors, time.monotonic() - start


def main():
    """`driver.py AUTHORIZE_URL REDIRECT_URI N OUT_FILE [BROWSERS]` (bench/run-as.sh,
    bench/run-instances.sh): mint N codes, one per line into OUT_FILE. The user comes from
    BENCH_USER / BENCH_PASSWORD. Exits 1 when fewer than N codes came back."""
    import os
    import sys

    url, redirect, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    browsers = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    codes, errors, secs = mint(url, redirect, n, browsers, os.environ["BENCH_USER"],
                               os.environ["BENCH_PASSWORD"], deadline_s=40.0,
                               procs=int(os.environ.get("MINT_PROCS", "2")))
    with open(out, "w") as f:
        f.write("".join(c + "\n" for c in codes))
    print(f"minted {len(codes)} codes through real flows in {secs:.1f}s "
          f"({len(codes) / secs:.0f} flows/s, {browsers} browsers, "
          f"{os.environ.get('MINT_PROCS', '2')} processes)", file=sys.stderr)
    if errors:
        print(f"{len(errors)} flow errors, first: {errors[0][:300]}", file=sys.stderr)
    if len(codes) < n:
        sys.exit(1)


if __name__ == "__main__":
    main()
