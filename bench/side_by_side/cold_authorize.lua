-- P5: GET /authorize with a client_id URL no server has seen (COLD_PREFIX is new each run, the
-- counter new each request), so every request makes the server fetch and validate a document.
local prefix = os.getenv("CIMD_ORIGIN") .. "%2Fcold%2F" .. os.getenv("COLD_PREFIX") .. "-"
local rest = "&redirect_uri=" .. os.getenv("REDIRECT_URI") .. "&state=s1"
  .. "&code_challenge=dKcX0ItkHMh6ghV5Cvw-Ru8EG_hyW6qzWv8Fw6xvVxY&code_challenge_method=S256"
  .. "&resource=" .. os.getenv("RESOURCE") .. "&scope=mcp"
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/authorize?response_type=code&client_id=" .. prefix .. n .. ".json" .. rest)
end
