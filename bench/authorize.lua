-- GET /authorize for a cached CIMD client (the path is prepared by bench_server).
local f = assert(io.open(os.getenv("BENCH_DIR") .. "/authorize.path"))
wrk.path = f:read("*l")
f:close()
