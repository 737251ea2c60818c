-- GET /api/organizations/{id}, a random seeded id per request.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local reqs, n

function init(args)
   bench.init_thread()
   reqs = bench.prebuilt_gets(bench.load_ids(), function(id)
      return "/api/organizations/" .. id
   end)
   n = #reqs
end

function request()
   return reqs[math.random(n)]
end
