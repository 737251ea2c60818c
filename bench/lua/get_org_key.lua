-- GET /api/organizations/{id} of ONE organization (BENCH_LIMITS_ORG) with that organization's own
-- key (BENCH_LIMITS_KEY, a viewer key), not the platform key: an organization key's requests count
-- against its organization's rate limit, so every request of the run takes from the same bucket
-- (one hot bucket, the worst case for contention). The limits scenario set the organization's
-- rateLimit to the most allowed (100,000 a second, a burst of 200,000), far above what wrk reaches
-- here, so no request should be refused: a 429 is a non-2xx like any other, counted by
-- common.lua's response(), and a bug.
--
-- The same request every time: no request() hook, wrk sends the request built after init().
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

function init(args)
   -- Not BENCH_KEY (the platform key, which no limit applies to): the organization's key.
   bench.init_thread({ auth = false })
   wrk.headers["Authorization"] = "Bearer " .. bench.env("BENCH_LIMITS_KEY")
   wrk.method = "GET"
   wrk.path = "/api/organizations/" .. bench.env("BENCH_LIMITS_ORG")
end
