-- POST /api/admin/organizations/{id}/charge on the one organization bench/wallet.py topped up
-- (BENCH_WALLET_ORG), with the platform key. Every request carries its own Idempotency-Key,
-- unique to the run (BENCH_RUN_TAG and BENCH_WALLET_SEQ, a number run.sh counts up per wrk run),
-- the thread and the request, so each one is a new charge, not a replay. The body is
-- {"amount":1,"service":"voice"}, and every 10th {"amount":1,"service":"sms","sms_point":1}, so
-- both kinds of charge are exercised. A 200 must carry "success":true; one without counts as
-- unexpected.
--
-- Each thread also counts the requests it generated (the global `sent`); done() prints the sum,
-- and the run script takes sent - requests as the requests wrk left in flight when it stopped
-- (the server may still commit those after wrk has gone; see bench/wallet.py check). wrk also
-- calls request() once on the first thread before the run, to check the request, and never sends
-- that one: so that count is at most one too high.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local VOICE = '{"amount":1,"service":"voice"}'
local SMS = '{"amount":1,"service":"sms","sms_point":1}'
local path, key_prefix
local counter = 0

function init(args)
   bench.init_thread()
   sent = 0
   wrk.headers["Content-Type"] = "application/json"
   bench.expect_body = '"success":true'
   path = "/api/admin/organizations/" .. bench.env("BENCH_WALLET_ORG") .. "/charge"
   key_prefix = "bench-" .. bench.env("BENCH_RUN_TAG", tostring(os.time())) .. "-"
      .. bench.env("BENCH_WALLET_SEQ", "0") .. "-t" .. tostring(tid) .. "-"
end

function request()
   counter = counter + 1
   sent = counter
   wrk.headers["Idempotency-Key"] = key_prefix .. counter
   local body = VOICE
   if counter % 10 == 0 then body = SMS end
   return wrk.format("POST", path, nil, body)
end
