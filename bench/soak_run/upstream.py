"""The MCP server behind cimdgate's gateway in the soak run: one `echo` tool, stateless
Streamable HTTP with JSON responses (what `side_by_side/fastmcp_server.py PORT noauth` offers),
written straight on asyncio so that it costs next to nothing.

    upstream.py PORT

Why not FastMCP: on this 2-core machine FastMCP without auth tops out near 600 tools/call per
second on a whole core (bench/side-by-side, P4 direct); the soak sends 300/s through the gateway
at its default rate, next to the load generator, cimdgate and Redis. The soak is about
cimdgate's memory and latency, not the upstream's, so the upstream is the cheapest server that
answers the same JSON-RPC (`SOAK_UPSTREAM=fastmcp` runs FastMCP instead).

HTTP/1.1 with keep-alive (cimdgate's upstream client pools its connections), `Content-Length`
or chunked request bodies. `POST /mcp`: `tools/call echo` returns its `text`; `initialize`,
`tools/list` and `ping` get minimal answers; notifications (no `id`) get 202; any other method
gets JSON-RPC error -32601. Other paths are 404, other methods 405. Listens on 127.0.0.1 only.
"""

import asyncio
import json
import sys

MAX_HEAD = 16 * 1024
MAX_BODY = 1024 * 1024
TOOL = {"name": "echo", "description": "Return the text unchanged.",
        "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                        "required": ["text"]}}


def answer(msg):
    """The JSON-RPC response to one request object, or None for a notification."""
    if not isinstance(msg, dict) or "id" not in msg:
        return None
    method, params = msg.get("method"), msg.get("params") or {}
    if method == "tools/call" and params.get("name") == "echo":
        text = str((params.get("arguments") or {}).get("text", ""))
        result = {"content": [{"type": "text", "text": text}], "isError": False}
    elif method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion", "2025-11-25"),
                  "capabilities": {"tools": {}},
                  "serverInfo": {"name": "soak-upstream", "version": "1"}}
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": msg["id"],
                "error": {"code": -32601, "message": f"method not found: {method}"}}
    return {"jsonrpc": "2.0", "id": msg["id"], "result": result}


def response(status, reason, body=b"", ctype="application/json"):
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: {ctype}\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    return head + body


def handle(method, path, body):
    if path.split("?", 1)[0] != "/mcp":
        return response(404, "Not Found")
    if method != "POST":
        return response(405, "Method Not Allowed")
    try:
        msg = json.loads(body)
    except ValueError:
        return response(400, "Bad Request", b'{"error":"invalid JSON"}')
    if isinstance(msg, list):
        out = [a for a in map(answer, msg) if a is not None]
    else:
        out = answer(msg)
    if not out:
        return response(202, "Accepted")
    return response(200, "OK", json.dumps(out).encode())


class Conn(asyncio.Protocol):
    """One keep-alive connection: requests are parsed from the buffer as bytes arrive."""

    def connection_made(self, transport):
        self.t = transport
        self.buf = bytearray()

    def data_received(self, data):
        self.buf += data
        while True:
            req = self.parse()
            if req is None:
                return
            if req is False:
                self.t.write(response(400, "Bad Request"))
                self.t.close()
                return
            method, path, body, close = req
            self.t.write(handle(method, path, body))
            if close:
                self.t.close()
                return

    def parse(self):
        """(method, path, body, close) for one complete request; None: need more bytes;
        False: malformed."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False if len(self.buf) > MAX_HEAD else None
        lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return False
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, pos = bytearray(), start
            while True:
                eol = self.buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                try:
                    size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
                except ValueError:
                    return False
                if size == 0:
                    trailer_end = self.buf.find(b"\r\n\r\n", eol)  # after any trailers
                    if trailer_end < 0:
                        return None
                    consumed = trailer_end + 4
                    break
                if len(body) + size > MAX_BODY:
                    return False
                if len(self.buf) < eol + 2 + size + 2:
                    return None
                body += self.buf[eol + 2:eol + 2 + size]
                pos = eol + 2 + size + 2
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                return False
            if length > MAX_BODY:
                return False
            if len(self.buf) < start + length:
                return None
            body, consumed = bytes(self.buf[start:start + length]), start + length
        del self.buf[:consumed]
        close = headers.get("connection", "").lower() == "close"
        return parts[0], parts[1], bytes(body), close


async def main(port):
    server = await asyncio.get_running_loop().create_server(Conn, "127.0.0.1", port)
    print(f"soak upstream listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
