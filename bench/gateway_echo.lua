-- POST tools/call echo with a bearer token (stateless Streamable HTTP: no initialize, no session).
-- The same request goes to the gateway (which checks the token and proxies) and, for the direct
-- baseline, straight to the upstream (which ignores the Authorization header).
local body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOKEN"),
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json, text/event-stream",
  ["Mcp-Protocol-Version"] = "2025-11-25",
}
request = function()
  return wrk.format("POST", "/mcp", headers, body)
end
