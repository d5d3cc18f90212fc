"""The shipped `cimdgate serve --config` under test, with what it needs around it, all on
127.0.0.1 — shared by `bench/store-ops` (imported) and `bench/run-instances.sh` (run as a
process). Built from bench/side_by_side's helpers (run.py, tls.py, cimd_host.py), not copied:

- the HTTPS CIMD host (`side_by_side/cimd_host.py`: `/public.json`, `/pkjwt.json` with an
  inline ES256 JWKS, `/cold/<any>.json`) under a CA made for the run;
- optionally the MCP upstream (`side_by_side/fastmcp_server.py PORT noauth`), else
  `builtin:demo`;
- K cimdgate instances from one configuration (`run.cimdgate_config`: local user, CIMD open
  mode, rate limits off) — the same `public_url` (the first instance's origin), each on its own
  `--listen` port and its own admin port (`/metrics`); the store and anything else come in as
  `CIMDGATE_<SECTION>__<KEY>` overrides.

The configuration lists the user `bench` and `u00`…`u63` (same password): a user's live grants
to a client are read on every consent (`front::consent::with_earlier_scopes`, one revocation
check per grant), so scripts that mint many codes take a fresh user per batch to keep the
minting flows' cost flat (docs/scaling.md).

As a process (bench/run-instances.sh):

    fixture.py --bin CIMDGATE --instances K --store-url URL --out DIR [--upstream URL]

writes DIR/env.sh (CIMDGATE_PORTS, CIMDGATE_PIDS, CIMDGATE_ADMIN_PORTS and the values the Lua
scripts and driver.py need), DIR/authorize.path and DIR/authorize_pkjwt.path, prints
`READY <port>…` and serves until SIGTERM/SIGINT, then stops what it started (by PID).
"""

import argparse
import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH / "side_by_side"))
import run  # noqa: E402  (start, stop_all, free_port, wait_http, cimdgate_config, Target)
import tls  # noqa: E402

USERS = ["bench"] + [f"u{i:02d}" for i in range(64)]


class Instance:
    """One running `cimdgate serve`."""

    def __init__(self, name, port, admin_port, proc):
        self.name, self.port, self.admin_port, self.proc = name, port, admin_port, proc
        self.origin = f"http://127.0.0.1:{port}"
        self.metrics_url = f"http://127.0.0.1:{admin_port}/metrics" if admin_port else None

    def stop(self):
        stop_proc(self.proc)


def stop_proc(proc):
    """Stop one process this module started (by its Popen, i.e. its PID)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc in run.PROCS:
        run.PROCS.remove(proc)


class Stack:
    """CIMD host (+ optional FastMCP upstream) and a factory of cimdgate instances."""

    def __init__(self, workdir, binary, upstream="builtin:demo"):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.binary = str(binary)
        self.ca = tls.make_ca_and_leaf(self.workdir, "cimd.test")
        self.es256 = tls.Es256Key("bench-es256")
        (self.workdir / "jwks.json").write_text(json.dumps(self.es256.jwks()))
        py = sys.executable
        p_cimd = run.free_port()
        self.cimd_origin = f"https://cimd.test:{p_cimd}"
        self.public_id = self.cimd_origin + "/public.json"
        self.pkjwt_id = self.cimd_origin + "/pkjwt.json"
        host = run.start("cimd-host", [py, run.HERE / "cimd_host.py", str(p_cimd),
                                       self.ca["leaf_pem"], self.ca["leaf_key"],
                                       self.workdir / "jwks.json"], self.workdir)
        ctx = ssl.create_default_context(cafile=str(self.ca["ca_pem"]))
        ctx.check_hostname = False
        run.wait_http(f"https://127.0.0.1:{p_cimd}/public.json", host, self.workdir, context=ctx)
        if upstream == "fastmcp":
            p_up = run.free_port()
            up = run.start("fastmcp-noauth", [py, run.HERE / "fastmcp_server.py", str(p_up),
                                              "noauth"], self.workdir)
            run.wait_http(f"http://127.0.0.1:{p_up}/mcp", up, self.workdir)
            upstream = f"http://127.0.0.1:{p_up}/mcp"
        self.upstream = upstream
        self.pw_hash = subprocess.run([self.binary, "hash-password"], input=run.PASSWORD,
                                      text=True, capture_output=True, check=True).stdout.strip()
        self.serial = 0

    def config(self, public_port, name):
        """One configuration file for a group of instances (public_url = the first one)."""
        text = run.cimdgate_config(public_port, self.workdir / f"{name}-data",
                                   self.ca["ca_pem"], self.upstream)
        text += "".join(f'[[identity.users]]\nusername = "{u}"\npassword_hash = "{{hash}}"\n'
                        for u in USERS[1:])
        path = self.workdir / f"{name}.toml"
        path.write_text(text.replace("{hash}", self.pw_hash))
        return path

    def start_group(self, count, env=None, name=None):
        """`count` instances of one configuration (a shared store must be Redis: give
        CIMDGATE_STORE__URL in `env`); returns them once each answers and has warmed the
        document cache through the real endpoint."""
        self.serial += 1
        name = name or f"cimdgate{self.serial}"
        ports = [run.free_port() for _ in range(count)]
        cfg = self.config(ports[0], name)
        self.public_base = f"http://127.0.0.1:{ports[0]}"
        self.target = run.Target(name, "cimdgate", self.public_base, None, self.workdir)
        out = []
        for i, port in enumerate(ports):
            admin = run.free_port()
            inst_name = f"{name}-{i}" if count > 1 else name
            proc = run.start(inst_name, [self.binary, "serve", "--config", cfg,
                                         "--listen", f"127.0.0.1:{port}"], self.workdir,
                             env={**(env or {}), "CIMDGATE_ADMIN__LISTEN": f"127.0.0.1:{admin}"})
            inst = Instance(inst_name, port, admin, proc)
            run.wait_http(inst.origin + "/.well-known/oauth-authorization-server", proc,
                          self.workdir)
            for client_id in (self.public_id, self.pkjwt_id):
                with urllib.request.urlopen(inst.origin + self.authorize_path(client_id),
                                            timeout=10) as r:
                    r.read()
            out.append(inst)
        return out

    def authorize_path(self, client_id):
        return self.target.authorize_path(client_id)

    @property
    def resource(self):
        return self.target.resource

    @property
    def token_endpoint(self):
        return self.public_base + "/token"

    def lua_env(self):
        """What bench/*.lua read (PUBLIC_CLIENT_ID, REDIRECT_URI, CODE_VERIFIER, RESOURCE…)."""
        return self.target.env(self.cimd_origin)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--store-url", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--upstream", default="builtin:demo")
    ap.add_argument("--max-seconds", type=float, default=3600.0,
                    help="stop by itself after this long (default 3600)")
    a = ap.parse_args()
    out = Path(a.out).resolve()
    stack = Stack(out, a.bin, a.upstream)
    insts = stack.start_group(a.instances, env={"CIMDGATE_STORE__URL": a.store_url})
    for client_id, file in ((stack.public_id, "authorize.path"),
                            (stack.pkjwt_id, "authorize_pkjwt.path")):
        (out / file).write_text(stack.authorize_path(client_id))
    env = stack.lua_env()
    env.update(BENCH_DIR=str(out), BENCH_USER=run.USER, BENCH_PASSWORD=run.PASSWORD,
               PKJWT_CLIENT_ID=quote(stack.pkjwt_id, safe=""),
               CIMDGATE_PORT=str(insts[0].port),
               CIMDGATE_PORTS=" ".join(str(i.port) for i in insts),
               CIMDGATE_PIDS=" ".join(str(i.proc.pid) for i in insts),
               CIMDGATE_ADMIN_PORTS=" ".join(str(i.admin_port) for i in insts),
               BENCH_USERS=" ".join(USERS[1:]))
    env.pop("STOP_WHEN_SPENT", None)
    (out / "env.sh").write_text("".join(f"export {k}='{v}'\n" for k, v in env.items()))
    print("READY " + " ".join(str(i.port) for i in insts), flush=True)
    deadline = time.monotonic() + a.max_seconds
    while all(i.proc.poll() is None for i in insts):
        if time.monotonic() > deadline:
            raise SystemExit(f"fixture: --max-seconds {a.max_seconds:g} reached, stopping")
        time.sleep(0.5)
    dead = [i.name for i in insts if i.proc.poll() is not None]
    raise SystemExit(f"cimdgate exited: {dead} (logs in {out})")


if __name__ == "__main__":
    run.run_main(main, exit_on_signal=0)
