-- Shared by every bench/lua/*.lua script; each loads it with dofile(BENCH_LUA_DIR/common.lua).
--
-- wrk runs one Lua state per thread plus one for setup()/done(). Each thread counts its own
-- non-2xx responses in a global; done() (in the main state) sums them via thread:get().
--
-- Environment (set by bench/run.sh):
--   BENCH_KEY        API key sent as "Authorization: Bearer ..."
--   BENCH_IDS_FILE   file with one organization id per line (get_org, patch_org; the compat
--                    scripts: the partner's children)
--   BENCH_DB         label for the RESULT line (sqlite, sqlite-pool, postgres)
--   BENCH_ENDPOINT   label for the RESULT line (healthz, get_org, access, patch_org, post_org,
--                    members_p1, members_p5000, v2_update_org, v1_properties, charge, login,
--                    login_low, get_org_key_off, get_org_key_memory, get_org_key_redis, ...)
--   BENCH_RUN_TAG    unique per wrk invocation; makes POSTed names unique across runs
--   BENCH_MEMBERS_ORG, BENCH_MEMBERS_PAGE, BENCH_MEMBERS_PER_PAGE   members.lua
--   BENCH_LOGIN_EMAIL, BENCH_LOGIN_PASSWORD                          login.lua
--   BENCH_COMPAT_TOKEN, BENCH_COMPAT_PKEY, BENCH_WRK_THREADS         v2_update_org.lua, v1_properties.lua
--   BENCH_WALLET_ORG, BENCH_WALLET_SEQ                               charge.lua
--   BENCH_LIMITS_ORG, BENCH_LIMITS_KEY                               get_org_key.lua
--
-- A script may set bench.expect_body (in init) to a literal every 2xx answer must contain: a 2xx
-- answer without it counts as "unexpected" (e.g. a 200 whose settings partly failed).
--
-- A script may also count, in the per-thread global `sent`, the requests it generated: done() then
-- adds their sum to the RESULT line as sent=N (charge.lua, for the ledger check).
--
-- A script may define bench.result_extra() (called in the main state by done(); the threads are
-- in bench.threads) to return more " key=value" fields for the RESULT line (avatar_bomb.lua).

bench = {}

-- Paced runs (BENCH_RATE > 0, requests a second in all): each thread spaces its requests
-- evenly, BENCH_WRK_THREADS threads sharing the rate, instead of sending the next request the
-- moment an answer arrives. wrk asks delay() before each request after a connection's first;
-- it must be a global of the script as loaded (wrk looks for it before any thread starts), so
-- it is defined here, when the rate is set.
--
-- A request whose turn came while every connection of its thread was still waiting for an
-- answer goes as soon as one is free, late. wrk measures latency from the send, so that wait is
-- not in its histogram (coordinated omission); each request's lateness is kept in a histogram
-- of its own (0.1 ms buckets), and done() reports an upper bound of the p99 of lateness plus
-- latency: P(late + latency > a + b) <= P(late > a) + P(latency > b), so the p99.5 of each
-- summed bounds the p99 of the sum, without pairing a request's lateness with its latency
-- (wrk's Lua does not say which connection answered).
local bench_rate = tonumber(os.getenv("BENCH_RATE") or "") or 0
if bench_rate > 0 then
   local ffi = require("ffi")
   ffi.cdef [[
      typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
      int clock_gettime(int clock, bench_timespec *tp);
   ]]
   local tp = ffi.new("bench_timespec")
   local function now_ms()
      ffi.C.clock_gettime(1, tp) -- CLOCK_MONOTONIC
      return tonumber(tp.tv_sec) * 1000 + tonumber(tp.tv_nsec) / 1e6
   end
   local threads_n = tonumber(os.getenv("BENCH_WRK_THREADS") or "1") or 1
   local interval = math.max(threads_n, 1) * 1000 / bench_rate
   local next_turn = nil
   late, late_max_ms, late_hist = 0, 0, {}
   function delay()
      local now = now_ms()
      next_turn = next_turn or now
      local turn = next_turn
      next_turn = next_turn + interval
      local wait = turn - now
      local bucket = 0
      if wait < 0 then
         if wait < -1 then late = late + 1 end
         if -wait > late_max_ms then late_max_ms = -wait end
         bucket = math.floor(-wait * 10)
      end
      late_hist[bucket] = (late_hist[bucket] or 0) + 1
      if wait <= 0 then return 0 end
      return math.floor(wait)
   end
end

local threads = {}
local next_tid = 1
bench.threads = threads

function bench.env(name, default)
   local v = os.getenv(name)
   if v == nil or v == "" then
      if default == nil then
         error("environment variable " .. name .. " is not set")
      end
      return default
   end
   return v
end

-- Called in the main state once per thread, before the thread starts.
function setup(thread)
   thread:set("tid", next_tid)
   next_tid = next_tid + 1
   table.insert(threads, thread)
end

-- Per-thread initialisation common to all scripts; scripts call it from their init().
-- opts.auth = false leaves out the Authorization header (for /healthz, which needs none).
function bench.init_thread(opts)
   opts = opts or {}
   non2xx = 0
   unexpected = 0
   statuses = {}
   tid = tid or 0
   math.randomseed(os.time() * 1000 + tid * 7919 + math.floor((os.clock() * 1e6) % 1e6))
   -- Warm the generator: the first values after seeding are poorly mixed in some Luas.
   for _ = 1, 10 do math.random() end
   local key = bench.env("BENCH_KEY", "")
   if opts.auth ~= false and key ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
end

-- The whole of a (binary) file, e.g. a prebuilt request body.
function bench.read_file(path)
   local f = assert(io.open(path, "rb"), "cannot open " .. path)
   local data = f:read("*a")
   f:close()
   if data == nil or #data == 0 then
      error(path .. " is empty")
   end
   return data
end

function bench.load_ids()
   local path = bench.env("BENCH_IDS_FILE")
   local f = assert(io.open(path, "r"), "cannot open ids file " .. path)
   local ids = {}
   for line in f:lines() do
      line = line:gsub("%s+$", "")
      if line ~= "" then
         ids[#ids + 1] = line
      end
   end
   f:close()
   if #ids == 0 then
      error("ids file " .. path .. " is empty")
   end
   return ids
end

-- One prebuilt GET per id, its path made by path_of(id): a request() that picks one at random
-- costs wrk a table lookup, as /healthz's prebuilt request does, instead of formatting a
-- request each time: on two cores shared with the server, formatting took wrk 2 µs of CPU more a
-- request (user time 6.1 µs a request against 4.0, session 28), which the server's figures
-- paid for. Call after bench.init_thread (the headers).
function bench.prebuilt_gets(ids, path_of)
   local reqs = {}
   for i = 1, #ids do
      reqs[i] = wrk.format("GET", path_of(ids[i]))
   end
   return reqs
end

function response(status, headers, body)
   if status < 200 or status > 299 then
      non2xx = non2xx + 1
      local s = tostring(status)
      statuses[s] = (statuses[s] or 0) + 1
   elseif bench.expect_body ~= nil and (body == nil or not string.find(body, bench.expect_body, 1, true)) then
      unexpected = unexpected + 1
   end
end

function done(summary, latency, requests)
   local non = 0
   local odd = 0
   local sent = nil
   local by_status = {}
   for _, t in ipairs(threads) do
      non = non + (t:get("non2xx") or 0)
      odd = odd + (t:get("unexpected") or 0)
      local s = t:get("sent")
      if s ~= nil then sent = (sent or 0) + s end
      -- statuses is a table; thread:get copies tables of strings/numbers.
      local st = t:get("statuses")
      if type(st) == "table" then
         for k, v in pairs(st) do
            by_status[k] = (by_status[k] or 0) + v
         end
      end
   end
   local e = summary.errors
   local socket_errors = e.connect + e.read + e.write + e.timeout
   local secs = summary.duration / 1e6
   local rps = 0
   if secs > 0 then rps = summary.requests / secs end
   local codes = {}
   for k, v in pairs(by_status) do codes[#codes + 1] = k .. ":" .. v end
   table.sort(codes)
   local codes_s = "-"
   if #codes > 0 then codes_s = table.concat(codes, ",") end
   local sent_s = ""
   if sent ~= nil then sent_s = string.format(" sent=%d", sent) end
   if bench.result_extra ~= nil then sent_s = sent_s .. bench.result_extra() end
   if bench_rate > 0 then
      local late_n, late_max, hist, turns = 0, 0, {}, 0
      for _, t in ipairs(threads) do
         late_n = late_n + (t:get("late") or 0)
         late_max = math.max(late_max, t:get("late_max_ms") or 0)
         local h = t:get("late_hist")
         if type(h) == "table" then
            for k, v in pairs(h) do
               hist[k] = (hist[k] or 0) + v
               turns = turns + v
            end
         end
      end
      -- The p99.5 of lateness, to the bucket's upper edge.
      local keys = {}
      for k in pairs(hist) do keys[#keys + 1] = k end
      table.sort(keys)
      local late_p995, seen = 0, 0
      for _, k in ipairs(keys) do
         seen = seen + hist[k]
         if seen >= 0.995 * turns then
            late_p995 = k == 0 and 0 or (k + 1) / 10
            break
         end
      end
      local p995 = latency:percentile(99.5) / 1000
      sent_s = sent_s .. string.format(
         " rate=%d late=%d late_max_ms=%.1f late_p995_ms=%.1f p995_ms=%.3f p99_bound_ms=%.3f",
         bench_rate, late_n, late_max, late_p995, p995, late_p995 + p995)
   end
   io.write(string.format(
      "RESULT db=%s endpoint=%s rps=%.1f p50_ms=%.3f p99_ms=%.3f non2xx=%d errors=%d requests=%d "
         .. "connect=%d read=%d write=%d timeout=%d statuses=%s unexpected=%d%s\n",
      bench.env("BENCH_DB", "unknown"), bench.env("BENCH_ENDPOINT", "unknown"),
      rps, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      non, socket_errors, summary.requests,
      e.connect, e.read, e.write, e.timeout, codes_s, odd, sent_s))
end
