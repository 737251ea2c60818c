-- GET /api/organizations/{id}/access?channel=voice, a random seeded id per request: the access
-- check a media server makes before each call.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local ids, n

function init(args)
   bench.init_thread()
   ids = bench.load_ids()
   n = #ids
end

function request()
   return wrk.format("GET", "/api/organizations/" .. ids[math.random(n)] .. "/access?channel=voice")
end
