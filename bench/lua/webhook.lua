-- POST BENCH_HOOK_PATH (/api/billing/webhooks/stripe) with pre-signed events, one a line of
-- BENCH_EVENTS_FILE ("header<TAB>body", written by bench/webhooks.py setup or setup-chargebee),
-- the first part sent as BENCH_HOOK_HEADER (Stripe-Signature; Authorization for Chargebee). Thread k of n
-- sends lines k, k+n, k+2n, ... and starts its share again when it runs out (so a long run mixes
-- in redeliveries). Counts the answers that said "duplicate":false (fresh) and true (dup); done()
-- prints them with the usual counts.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local lines = {}
local at
local path = os.getenv("BENCH_HOOK_PATH") or "/api/billing/webhooks/stripe"
local header = os.getenv("BENCH_HOOK_HEADER") or "Stripe-Signature"

function init(args)
   bench.init_thread({ auth = false })
   fresh = 0
   dup = 0
   wrk.headers["Content-Type"] = "application/json"
   local n = tonumber(bench.env("BENCH_WRK_THREADS", "2"))
   local i = 0
   for line in io.lines(bench.env("BENCH_EVENTS_FILE")) do
      if i % n == (tid - 1) % n then
         local tab = line:find("\t", 1, true)
         table.insert(lines, { line:sub(1, tab - 1), line:sub(tab + 1) })
      end
      i = i + 1
   end
   at = 0
end

function request()
   at = at % #lines + 1
   wrk.headers[header] = lines[at][1]
   return wrk.format("POST", path, nil, lines[at][2])
end

local base_response = response
function response(status, headers, body)
   if body:find('"duplicate":false', 1, true) then
      fresh = fresh + 1
   elseif body:find('"duplicate":true', 1, true) then
      dup = dup + 1
   end
   if base_response then base_response(status, headers, body) end
end

function bench.result_extra()
   local f, d = 0, 0
   for _, t in ipairs(bench.threads) do
      f = f + (t:get("fresh") or 0)
      d = d + (t:get("dup") or 0)
   end
   return " fresh=" .. f .. " dup=" .. d
end
