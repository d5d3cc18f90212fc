#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

Run once when a target's input format changes (`python3 fuzz/seed_corpus.py`); the fuzzer's
own finds sit next to the seeds under their content hashes. Each seed follows the input format
described at the top of its target's source file.
"""
import base64
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def write(target: str, seeds: list) -> None:
    folder = ROOT / target
    folder.mkdir(parents=True, exist_ok=True)
    for n, seed in enumerate(seeds):
        data = seed.encode() if isinstance(seed, str) else seed
        (folder / f"seed-{n:03}").write_bytes(data)


CLIENT_IDS = [
    "https://app.example.com/client.json",
    "https://claude.ai/oauth/mcp-oauth-client-metadata",
    "https://chatgpt.com/oauth/client.json",
    "https://agent.example.com/oauth/client-metadata.json",
    "https://app.example.com:8443/client.json",
    "https://app.example.com:443/client.json",
    "https://app.example.com/client.json?v=2",
    "https://[2001:db8::1]/client.json",
    "https://192.0.2.10/client.json",
    "https://xn--bcher-kva.example/c.json",
    "https://app.example.com./client.json",
    "https://app.example.com/a/%7Euser/c%20d.json",
    # refused forms
    "https://app.example.com/a/../client.json",
    "https://app.example.com/%2e%2e/client.json",
    "https://app.example.com/.%2E/x",
    "https://app.example.com/",
    "https://app.example.com",
    "HTTPS://app.example.com/client.json",
    "http://app.example.com/client.json",
    "https://user:pw@app.example.com/client.json",
    "https://app.example.com/client.json#frag",
    "https://0x7f.1/client.json",
    "https://intranet/client.json",
    "https://app.example.com:0/c",
    "https://app.example.com:65536/c",
    "https://app.example.com\\@evil.example/c",
    "https://app.exa mple.com/c",
    "https://bücher.example/c.json",
    "https://[::ffff:127.0.0.1]/c",
    "https://app.example.com/c%zz",
    "https://*.example.com/c",
]

EC_KEY = {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
BASE = {"client_id": "https://app.example.com/client.json", "client_name": "Example",
        "redirect_uris": ["https://app.example.com/cb"]}
DOCUMENTS = [
    # (mode: bit 0 lenient, bit 1 fetched from app.example.com/client.json), document
    (2, BASE),
    (2, {**BASE, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [EC_KEY]},
         "token_endpoint_auth_signing_alg": "ES256"}),
    (2, {**BASE, "token_endpoint_auth_method": "private_key_jwt",
         "jwks": {"keys": [{**EC_KEY, "d": "private"}]}}),
    (2, {**BASE, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
    (2, {**BASE, "client_secret": "s3cret", "token_endpoint_auth_method": "client_secret_basic"}),
    (2, {**BASE, "grant_types": ["authorization_code", "refresh_token", "implicit"],
         "response_types": ["code", "token"], "scope": "mcp:read mcp:write"}),
    (2, {**BASE, "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
         "jwks_uri": "https://app.example.com/jwks.json", "jwks": {"keys": []}}),
    (3, {**BASE, "client_name": "\u202egnp.exe", "logo_uri": "https://127.0.0.1/logo.png",
         "client_uri": "https://claude.ai@evil.example/", "tos_uri": "http://app.example.com/tos"}),
    (0, {"client_id": "https://claude.ai/oauth/mcp-oauth-client-metadata", "client_name": "Claude",
         "client_uri": "https://claude.ai",
         "redirect_uris": ["https://claude.ai/api/mcp/auth_callback"],
         "grant_types": ["authorization_code", "refresh_token",
                         "urn:ietf:params:oauth:grant-type:jwt-bearer"],
         "response_types": ["code"], "token_endpoint_auth_method": "none"}),
    (0, {"client_id": "https://claude.ai/oauth/claude-code-client-metadata",
         "client_name": "Claude Code",
         "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
         "token_endpoint_auth_method": "none"}),
    (0, {"client_id": "https://chatgpt.com/oauth/client.json", "client_name": "ChatGPT",
         "client_uri": "https://chatgpt.com/",
         "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
         "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
         "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
         "token_endpoint_auth_signing_alg": "RS256",
         "jwks_uri": "https://chatgpt.com/oauth/jwks.json"}),
    (1, {"client_id": "https://agent.example.com/oauth/client-metadata.json",
         "client_uri": "https://agent.example.com/", "logo_uri": "https://agent.example.com/logo.png",
         "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback",
                           "https://agent.example.com/oauth/callback", "com.example.app:/cb"],
         "contacts": ["security@agent.example.com"], "software_id": "x", "software_version": "1"}),
    (2, {**BASE, "redirect_uris": []}),
    (2, {**BASE, "redirect_uris": ["https://app.example.com/cb#f", "javascript:alert(1)"]}),
]
DOCUMENT_EXTRAS = [b"\x02[]", b"\x02{", b"\x02\xff\xfe", b"\x02" + b" " * 5200, b"\x02null"]

HEADERS = [
    "Cache-Control: max-age=600\nDate: Tue, 14 Nov 2023 22:13:20 GMT",
    "Cache-Control: Max-Age=60, No-Cache",
    "Cache-Control: no-store",
    "Cache-Control: private, max-age=86400, immutable\nETag: \"abc\"",
    "Cache-Control: max-age=0\nLast-Modified: Tue, 14 Nov 2023 20:00:00 GMT",
    "Cache-Control: max-age=3600\nAge: 1800",
    "Age: 18446744073709551615\nCache-Control: max-age=60",
    "Cache-Control: max-age=99999999999999999999999",
    "Cache-Control: s-maxage=100, max-age=10, stale-while-revalidate=30",
    "Expires: Wed, 15 Nov 2023 22:13:20 GMT\nDate: Tue, 14 Nov 2023 22:13:20 GMT",
    "Expires: 0",
    "Expires: Thu, 01 Jan 1970 00:00:00 GMT",
    "Pragma: no-cache",
    "Pragma: No-Cache\nCache-Control: max-age=100",
    "Vary: *\nCache-Control: max-age=100",
    "Vary: Accept, Accept-Encoding\nETag: W/\"v1\"",
    "Cache-Control: max-age=\"100\"",
    "Cache-Control: max-age=-1",
    "Cache-Control: max-age=60\nCache-Control: no-cache=\"set-cookie\"",
    "Date: Mon, 01 Jan 2100 00:00:00 GMT\nCache-Control: max-age=60",
    "Cache-Control: must-revalidate, proxy-revalidate, public, max-age=31536000",
]

NOW = 1_700_000_000
ISS = "https://app.example.com/client.json"


def jwt(header: dict, claims: dict, sig: bytes = b"signature") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(sig)])


GOOD_CLAIMS = {"iss": ISS, "sub": ISS, "aud": "https://as.example.com/token",
               "iat": NOW, "exp": NOW + 120, "jti": "3f1c2b7e-1a2b-4c3d-8e9f-000000000001"}
JWTS = [
    ({"alg": "ES256", "kid": "k1", "typ": "JWT"}, GOOD_CLAIMS),
    ({"alg": "RS256"}, {**GOOD_CLAIMS, "aud": ["https://as.example.com", "other"]}),
    ({"alg": "EdDSA"}, {**GOOD_CLAIMS, "nbf": NOW - 10, "iat": None}),
    ({"alg": "PS512"}, {k: v for k, v in GOOD_CLAIMS.items() if k != "iat"}),
    ({"alg": "none"}, GOOD_CLAIMS),
    ({"alg": "HS256"}, GOOD_CLAIMS),
    ({"alg": "ES256", "crit": ["exp"]}, GOOD_CLAIMS),
    ({"alg": "ES256", "kid": 7}, GOOD_CLAIMS),
    ({"alg": "ES256", "jwk": EC_KEY}, {**GOOD_CLAIMS, "exp": NOW + 99999}),
    ({"alg": "ES384"}, {**GOOD_CLAIMS, "exp": 1.7e9, "iat": 1699999999.5}),
    ({"alg": "RS384"}, {**GOOD_CLAIMS, "exp": 18446744073709551615}),
    ({"alg": "ES256"}, {**GOOD_CLAIMS, "jti": ""}),
    ({"alg": "ES256"}, {**GOOD_CLAIMS, "iss": "https://evil.example/c.json"}),
]


def jwt_seeds() -> list:
    seeds = []
    for header, claims in JWTS:
        claims = {k: v for k, v in claims.items() if v is not None}
        # mode 0x74: now = NOW + 58*7 - 400 = NOW + 6 (even: the assertion as is)
        seeds.append(b"\x74" + jwt(header, claims).encode())
        # odd mode: header, claims and signature as raw parts
        seeds.append(b"\x75" + json.dumps(header).encode() + b"\n" + json.dumps(claims).encode()
                     + b"\nsig")
    seeds += [b"\x00a.b.c", b"\x00....", b"\x00" + b"eyJhbGciOiJFUzI1NiJ9..sig",
              b"\x00eyJhbGciOiJFUzI1NiJ9.e30.c2ln.x.y"]
    return seeds


CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
AUTHORIZE = [
    f"response_type=code&client_id=https%3A%2F%2Fapp.example.com%2Fclient.json"
    f"&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&state=xyz"
    f"&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=mcp%3Aread"
    f"&resource=https%3A%2F%2Fas.example.com%2Fmcp",
    f"response_type=code&client_id=https://app.example.com/client.json"
    f"&redirect_uri=http://127.0.0.1:53123/callback&code_challenge={CHALLENGE}"
    f"&code_challenge_method=S256&resource=https://as.example.com/tools",
    f"response_type=code&client_id=a&client_id=b&state=s%20t&code_challenge={CHALLENGE}"
    f"&code_challenge_method=plain",
    "response_type=token&redirect_uri=https://app.example.com/callback?x=1&state=%E2%80%AE",
    "response_type=code&code_challenge=short&code_challenge_method=S256&scope=admin",
    "redirect_uri=https://app.example.com/callback/../admin&resource=https://as.example.com/mcp/",
    "redirect_uri=javascript:alert(1)&state=",
    "redirect_uri=http://localhost:8080/callback&response_type=&scope=+",
    "client_id=HTTPS%3A%2F%2Fapp.example.com%2Fc&scope=mcp:read%20tools&resource=",
    "state=%zz&=&&a=b=c&response_type=code&response_type=code",
]

TOKEN_FORMS = [
    "application/x-www-form-urlencoded\n\ngrant_type=authorization_code&code=abc123"
    "&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    "&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback"
    "&client_id=https%3A%2F%2Fapp.example.com%2Fclient.json&resource=https://as.example.com/mcp",
    "application/x-www-form-urlencoded; charset=UTF-8\n\ngrant_type=refresh_token"
    "&refresh_token=rt&scope=mcp:read&client_id=https://app.example.com/client.json",
    "application/x-www-form-urlencoded\n\ngrant_type=authorization_code&code=c"
    "&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    "&client_assertion=" + jwt({"alg": "ES256", "kid": "k1"}, GOOD_CLAIMS),
    "application/x-www-form-urlencoded\nBasic " + base64.b64encode(b"client%201:s3cr%3At").decode()
    + "\ngrant_type=authorization_code&code=c&code_verifier=short",
    "Application/X-WWW-Form-Urlencoded\nBearer abc\ngrant_type=password&username=u&password=p",
    "application/json\n\n{\"grant_type\":\"authorization_code\"}",
    "application/x-www-form-urlencoded\n\nresource=a&resource=b",
    "application/x-www-form-urlencoded\n\ngrant_type=authorization_code&grant_type=refresh_token",
    "application/x-www-form-urlencoded\n\ncode=&scope=&client_secret=x&client_id=y"
    "&client_assertion=z",
    "application/x-www-form-urlencoded\nbasic Og==\nclient_id=%FF%FE&code_verifier="
    + "a" * 129,
]

GATEWAY = [
    # mode byte: resource index (mod 3), bit 7 = prefix the resource path
    b"\x80", b"\x80/", b"\x80/x", b"\x80/x/y.json?session=1", b"\x80/.well-known/x",
    b"\x80/../b", b"\x80/..", b"\x80/./x", b"\x80/%2e%2e/b", b"\x80/%2E%2E/b", b"\x80/.%2E/b",
    b"\x80/x/../../b", b"\x80/..;/b", b"\x80/..\\b", b"\x80/%5c..%5cb", b"\x80/%2F..%2Fb",
    b"\x81/..%00/x", b"\x81/a/b/%252e%252e/c", b"\x81/x?a=1&b=2#frag", b"\x82/%2e", b"\x82x/..",
    b"\x00/mcp/../admin", b"\x01/a/..", b"\x02/tools/%2e%2e%2fadmin", b"\x80/\xef\xbc\x8e\xef\xbc\x8e/x",
    b"\x80/x..y", b"\x80/...", b"\x80/%20", b"\x80//evil.example/x", b"\x80/@evil.example",
]

if __name__ == "__main__":
    write("client_id_url", CLIENT_IDS)
    write("client_document",
          [bytes([mode]) + json.dumps(doc).encode() for mode, doc in DOCUMENTS] + DOCUMENT_EXTRAS)
    # 4 bytes of clock offset: 700_000_000 s after 2001-09-09 is the seeds' Date.
    clock = (NOW - 1_000_000_000).to_bytes(4, "little")
    write("cache_headers", [clock + h.encode() for h in HEADERS])
    write("jwt_assertion", jwt_seeds())
    write("authorize_query", AUTHORIZE)
    write("token_form", TOKEN_FORMS)
    write("gateway_path", GATEWAY)
