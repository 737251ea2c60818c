-- PATCH /v1/orgs/{id}/properties with {"updates": {"org_display_name": ..., "preferences":
-- {"use_bland_url": true}}}, authorized by "authorization: <partner key>" without "Bearer " (the
-- path the properties document allows besides Bearer). The children (BENCH_IDS_FILE) are those
-- bench/compat.py created with the partner key (BENCH_COMPAT_PKEY).
--
-- Each thread walks the children round robin, the threads starting evenly spaced
-- (BENCH_WRK_THREADS), so that requests in flight almost never target the same row. The display
-- name (at most 30 characters) is unique to the run, thread and request, so each request is a real
-- write. A 200 must carry "errors":null; one without counts as unexpected.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local ids, n, next_i, value_prefix
local counter = 0
local NAME_MAX = 30

function init(args)
   bench.init_thread({ auth = false })
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["authorization"] = bench.env("BENCH_COMPAT_PKEY")
   bench.expect_body = '"errors":null'
   ids = bench.load_ids()
   n = #ids
   local threads = tonumber(bench.env("BENCH_WRK_THREADS", "1")) or 1
   next_i = math.floor((tid - 1) * n / math.max(threads, 1)) % n
   value_prefix = bench.env("BENCH_RUN_TAG", tostring(os.time())) .. "-" .. tostring(tid) .. "-"
end

function request()
   counter = counter + 1
   local id = ids[next_i + 1]
   next_i = (next_i + 1) % n
   local v = value_prefix .. counter
   -- "Bench " + v within NAME_MAX: keep the end of v, where it changes.
   if #v > NAME_MAX - 6 then v = v:sub(-(NAME_MAX - 6)) end
   local body = '{"updates":{"org_display_name":"Bench ' .. v .. '","preferences":{"use_bland_url":true}}}'
   return wrk.format("PATCH", "/v1/orgs/" .. id .. "/properties", nil, body)
end
