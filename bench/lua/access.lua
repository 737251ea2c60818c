-- GET /api/organizations/{id}/access?channel=voice, a random seeded id per request: the access
-- check a media server makes before each call.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local reqs, n

function init(args)
   bench.init_thread()
   reqs = bench.prebuilt_gets(bench.load_ids(), function(id)
      return "/api/organizations/" .. id .. "/access?channel=voice"
   end)
   n = #reqs
end

function request()
   return reqs[math.random(n)]
end
