-- GET /healthz. No request() hook: wrk sends the same prebuilt request each time.
-- response() (from common.lua) is still defined so the cost matches get_org.lua's.
-- No Authorization header: /healthz needs none, and it is the baseline for request handling.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

wrk.method = "GET"
wrk.path = "/healthz"

function init(args)
   bench.init_thread({ auth = false })
end
