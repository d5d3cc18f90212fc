-- POST /token code exchange authenticated with an ES256 private_key_jwt assertion
-- (a fresh jti per request), one fresh code per request.
local codes, assertions = {}, {}
local dir = os.getenv("BENCH_DIR")
for line in io.lines(dir .. "/codes_pkjwt.txt") do codes[#codes + 1] = line end
for line in io.lines(dir .. "/assertions.txt") do assertions[#assertions + 1] = line end
local i = 0
local stop_when_spent = os.getenv("STOP_WHEN_SPENT") == "1"
local prefix = "grant_type=authorization_code"
  .. "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
  .. "&redirect_uri=" .. os.getenv("REDIRECT_URI")
  .. "&code_verifier=" .. os.getenv("CODE_VERIFIER")
  .. "&resource=" .. os.getenv("RESOURCE")
local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
request = function()
  i = i + 1
  if i > #codes then i = stop_when_spent and #codes or 1 end
  return wrk.format("POST", "/token", headers,
    prefix .. "&code=" .. codes[i] .. "&client_assertion=" .. assertions[i])
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
