-- PATCH /api/organizations/{id}: a random seeded id and a random new name per request,
-- so (almost) every request is a real write rather than the no-op of an unchanged body.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local ids, n

function init(args)
   bench.init_thread()
   wrk.headers["Content-Type"] = "application/json"
   ids = bench.load_ids()
   n = #ids
end

function request()
   local body = string.format('{"name":"Renamed %d-%d"}', math.random(1, 1000000000), math.random(1, 1000000000))
   return wrk.format("PATCH", "/api/organizations/" .. ids[math.random(n)], nil, body)
end
