-- POST /api/v2/updateOrganization?token=<partner key>&targetOrganizationId=<child> with three
-- settings: orgName, vidaPremium, externalAccountId. The children (BENCH_IDS_FILE) are those
-- bench/compat.py created with the partner key; the token (BENCH_COMPAT_TOKEN) is that key,
-- already percent-encoded for the query string. No Authorization header: the token is the
-- credential.
--
-- Each thread walks the children round robin, the threads starting evenly spaced
-- (BENCH_WRK_THREADS), so that requests in flight almost never target the same row. Each request
-- changes all three values (a name and an account id unique to the run, thread and request, and
-- vidaPremium flipping), so each is a real write. A 200 must also say that every setting passed
-- ("failedSettings":null): a 200 with a failed setting counts as unexpected.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local ids, n, next_i, path_prefix, value_prefix
local counter = 0

function init(args)
   bench.init_thread({ auth = false })
   wrk.headers["Content-Type"] = "application/json"
   bench.expect_body = '"failedSettings":null'
   ids = bench.load_ids()
   n = #ids
   local threads = tonumber(bench.env("BENCH_WRK_THREADS", "1")) or 1
   next_i = math.floor((tid - 1) * n / math.max(threads, 1)) % n
   path_prefix = "/api/v2/updateOrganization?token=" .. bench.env("BENCH_COMPAT_TOKEN") .. "&targetOrganizationId="
   value_prefix = bench.env("BENCH_RUN_TAG", tostring(os.time())) .. "-" .. tostring(tid) .. "-"
end

function request()
   counter = counter + 1
   local id = ids[next_i + 1]
   next_i = (next_i + 1) % n
   local v = value_prefix .. counter
   local body = '{"orgName":"Bench ' .. v .. '","vidaPremium":' .. (counter % 2 == 0 and "true" or "false")
      .. ',"externalAccountId":"AC_' .. v .. '"}'
   return wrk.format("POST", path_prefix .. id, nil, body)
end
