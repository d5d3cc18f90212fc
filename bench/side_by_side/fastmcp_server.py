"""FastMCP 4.1.6 for the side-by-side run: one `echo` tool over stateless Streamable HTTP (JSON
responses), with or without OAuthProxy.

    fastmcp_server.py PORT noauth
    fastmcp_server.py PORT auth IDP_URL IDP_PUBLIC_KEY_PEM

`auth` is OAuthProxy as FastMCP documents it for an upstream IdP: CIMD on (the default), consent
on (`require_authorization_consent=True`, the default), an in-memory client/transaction/code
store (`MemoryStore`), HS256 FastMCP tokens, and the upstream IdP's RS256 access tokens checked
with `JWTVerifier` on every MCP request (FastMCP's tokens are reference tokens). The upstream IdP
is `idp.py` (auto-approve): a hop that is part of FastMCP's path, not of cimdgate's.

Two bench-only changes, both printed at startup:
- loopback fetches: FastMCP has no switch that allows a loopback CIMD host (its only SSRF
  escape hatch, FASTMCP_SSRF_TRUST_PROXY, needs an HTTPS proxy in the path), so the IP check
  `fastmcp.server.auth.ssrf.is_ip_allowed` also accepts 127.0.0.1 — cimdgate's
  `fetch.dev_allow_loopback`;
- name resolution: `cimd.test` resolves to 127.0.0.1 (`ssrf.resolve_hostname`) — cimdgate's
  `fetch.resolve`. Everything after the resolution (pinned connection, TLS with SNI cimd.test,
  a fresh HTTP client per fetch) is FastMCP's unchanged code.
The private CA reaches FastMCP through SSL_CERT_FILE (httpcore2 reads it when trust_env is on,
which FastMCP's pinned fetch keeps); run.py points it at the system bundle plus the test CA.
"""

import sys

import uvicorn
from fastmcp import FastMCP

CIMD_HOST = "cimd.test"


def allow_loopback_fetches() -> None:
    from fastmcp.server.auth import ssrf

    original_allowed = ssrf.is_ip_allowed
    original_resolve = ssrf.resolve_hostname

    def is_ip_allowed(ip: str) -> bool:
        return ip == "127.0.0.1" or original_allowed(ip)

    async def resolve_hostname(hostname: str, port: int = 443) -> list[str]:
        if hostname == CIMD_HOST:
            return ["127.0.0.1"]
        return await original_resolve(hostname, port)

    ssrf.is_ip_allowed = is_ip_allowed
    ssrf.resolve_hostname = resolve_hostname
    print("bench: FastMCP SSRF check allows 127.0.0.1; cimd.test -> 127.0.0.1", flush=True)


def main() -> None:
    port = int(sys.argv[1])
    mode = sys.argv[2]
    base = f"http://127.0.0.1:{port}"
    auth = None
    if mode == "auth":
        from fastmcp.server.auth.oauth_proxy import OAuthProxy
        from fastmcp.server.auth.providers.jwt import JWTVerifier
        from key_value.aio.stores.memory import MemoryStore

        idp, pem_file = sys.argv[3], sys.argv[4]
        allow_loopback_fetches()
        with open(pem_file) as f:
            public_key = f.read()
        auth = OAuthProxy(
            upstream_authorization_endpoint=f"{idp}/authorize",
            upstream_token_endpoint=f"{idp}/token",
            upstream_client_id="fastmcp-bench",
            upstream_client_secret="fastmcp-bench-secret",
            token_verifier=JWTVerifier(public_key=public_key, issuer=idp, algorithm="RS256"),
            base_url=base,
            valid_scopes=["mcp"],
            client_storage=MemoryStore(),
            jwt_signing_key="side-by-side-bench-signing-key",
            require_authorization_consent=True,
        )
    elif mode != "noauth":
        raise SystemExit("mode is auth or noauth")
    mcp = FastMCP("bench", auth=auth)

    @mcp.tool
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    app = mcp.http_app(path="/mcp", stateless_http=True, json_response=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
