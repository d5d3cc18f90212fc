-- POST /token code exchange (public CIMD client, PKCE), one fresh code per request.
local codes = {}
-- CODES_FILE (optional) picks another list, so parallel wrk processes never share a code.
local file = os.getenv("CODES_FILE")
if file == nil or file == "" then file = os.getenv("BENCH_DIR") .. "/codes_public.txt" end
for line in io.lines(file) do codes[#codes + 1] = line end
local i = 0
local prefix = "grant_type=authorization_code&client_id=" .. os.getenv("PUBLIC_CLIENT_ID")
  .. "&redirect_uri=" .. os.getenv("REDIRECT_URI")
  .. "&code_verifier=" .. os.getenv("CODE_VERIFIER")
  .. "&resource=" .. os.getenv("RESOURCE") .. "&code="
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
request = function()
  i = i + 1
  if i > #codes then i = 1 end -- exhausted: later requests fail and show as non-2xx
  return wrk.format("POST", "/token", headers, prefix .. codes[i])
end
