"""The upstream IdP FastMCP's OAuthProxy needs (FastMCP's path only; cimdgate signs users in
itself with local users). Minimal OAuth 2.0: `GET /authorize` approves at once (302 back with a
code), `POST /token` exchanges that code for an RS256 JWT access token (1 h). Codes live in
memory and are single use.

    idp.py PORT PUBLIC_KEY_OUT
"""

import secrets
import sys
import time
from urllib.parse import urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

port = int(sys.argv[1])
ISSUER = f"http://127.0.0.1:{port}"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
with open(sys.argv[2], "wb") as f:
    f.write(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
CODES: dict[str, str] = {}


async def authorize(request):
    q = request.query_params
    code = secrets.token_urlsafe(24)
    CODES[code] = q.get("scope", "")
    sep = "&" if "?" in q["redirect_uri"] else "?"
    return RedirectResponse(
        q["redirect_uri"] + sep + urlencode({"code": code, "state": q.get("state", "")}), 302
    )


async def token(request):
    form = await request.form()
    scope = CODES.pop(str(form.get("code", "")), None)
    if scope is None:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "bench-user", "iat": now, "exp": now + 3600,
              "scope": scope, "jti": secrets.token_urlsafe(12)}
    return JSONResponse({"access_token": jwt.encode(claims, KEY, algorithm="RS256"),
                         "token_type": "Bearer", "expires_in": 3600, "scope": scope})


app = Starlette(routes=[Route("/authorize", authorize), Route("/token", token, methods=["POST"])])
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
