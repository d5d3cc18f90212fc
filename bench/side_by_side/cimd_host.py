"""The HTTPS host serving the CIMD documents (for both servers), under a CA made for this run.

    cimd_host.py PORT CERT_PEM KEY_PEM JWKS_JSON

- `/public.json` — a public client (`token_endpoint_auth_method: none`);
- `/pkjwt.json` — a `private_key_jwt` client whose inline `jwks` holds the run's ES256 key;
- `/cold/<anything>.json` — a public client whose client_id is that URL, so every new name is a
  document no server has cached (P5).
Each document is served with `Cache-Control: max-age=86400`. The Host header is ignored
(FastMCP sends it without the port).
"""

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

port = int(sys.argv[1])
with open(sys.argv[4]) as f:
    JWKS = json.load(f)
ORIGIN = f"https://cimd.test:{port}"
REDIRECT = "http://127.0.0.1:9/callback"


def document(path: str) -> dict | None:
    doc = {"client_id": ORIGIN + path, "redirect_uris": [REDIRECT], "scope": "mcp"}
    if path == "/public.json":
        doc["client_name"] = "Bench Public"
    elif path == "/pkjwt.json":
        doc.update(client_name="Bench PKJWT", token_endpoint_auth_method="private_key_jwt",
                   jwks=JWKS)
    elif path.startswith("/cold/") and path.endswith(".json"):
        doc["client_name"] = "Bench Cold"
    else:
        return None
    return doc


async def serve(request):
    doc = document(request.url.path)
    if doc is None:
        return Response(status_code=404)
    return Response(json.dumps(doc), media_type="application/json",
                    headers={"cache-control": "max-age=86400"})


app = Starlette(routes=[Route("/{path:path}", serve)])
uvicorn.run(app, host="127.0.0.1", port=port, ssl_certfile=sys.argv[2], ssl_keyfile=sys.argv[3],
            log_level="warning", access_log=False)
