-- POST /api/organizations with a name unique per request (run tag, thread, counter).
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local prefix
local counter = 0

function init(args)
   bench.init_thread()
   wrk.headers["Content-Type"] = "application/json"
   prefix = "Wrk Post " .. bench.env("BENCH_RUN_TAG", tostring(os.time())) .. " t" .. tostring(tid) .. " "
end

function request()
   counter = counter + 1
   local body = '{"name":"' .. prefix .. counter .. '","countryCode":"US"}'
   return wrk.format("POST", "/api/organizations", nil, body)
end
