-- POST /token code exchange (public CIMD client, PKCE), one fresh code per request.
local codes = {}
-- CODES_FILE (optional) picks another list, so parallel wrk processes never share a code.
local file = os.getenv("CODES_FILE")
if file == nil or file == "" then file = os.getenv("BENCH_DIR") .. "/codes_public.txt" end
for line in io.lines(file) do codes[#codes + 1] = line end
local i = 0
local stop_when_spent = os.getenv("STOP_WHEN_SPENT") == "1"
local prefix = "grant_type=authorization_code&client_id=" .. os.getenv("PUBLIC_CLIENT_ID")
  .. "&redirect_uri=" .. os.getenv("REDIRECT_URI")
  .. "&code_verifier=" .. os.getenv("CODE_VERIFIER")
  .. "&resource=" .. os.getenv("RESOURCE") .. "&code="
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
request = function()
  i = i + 1
  if i > #codes then i = stop_when_spent and #codes or 1 end -- exhausted: later requests fail and show as non-2xx
  return wrk.format("POST", "/token", headers, prefix .. codes[i])
end
-- STOP_WHEN_SPENT=1 (bench/side-by-side): end the run once every code has been sent. wrk
-- measures until its main thread wakes from the -d sleep, so this thread stops and sends SIGINT
-- to its own process (kill(2) through LuaJIT's FFI: os.execute would run `kill` inside system(),
-- which ignores SIGINT meanwhile); req/s is then over the time actually run.
if stop_when_spent then
  local ffi = require("ffi")
  ffi.cdef("int getpid(void); int kill(int pid, int sig);")
  local stopped = false
  response = function()
    if i >= #codes and not stopped then
      stopped = true
      wrk.thread:stop()
      ffi.C.kill(ffi.C.getpid(), 2)
    end
  end
end
