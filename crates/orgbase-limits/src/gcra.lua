-- GCRA (generic cell rate algorithm) for one bucket. Mirrors `step` in src/gcra.rs: change both.
--
-- KEYS[1]  the bucket: its theoretical arrival time (TAT), in microseconds since the epoch
-- ARGV[1]  the quota's interval, in microseconds (>= 1)
-- ARGV[2]  the quota's burst (>= 1)
-- ARGV[3]  1 to count the request (take), 0 to only ask (peek)
-- ARGV[4]  optional, for tests only: the time to use instead of the server's clock
--
-- Returns {allowed (1 or 0), remaining, reset_us, retry_after_us}.
--
-- The clock is the server's (TIME), so every node agrees on it. Lua numbers are doubles; times
-- in microseconds since the epoch (~1.8e15) stay below 2^53, so the integer sums here are exact.

-- Exact integer division of non-negative integers (a plain `/` then floor could round up).
local function div(a, b)
  return (a - math.fmod(a, b)) / b
end

local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
if not now then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000000 + tonumber(time[2])
end

-- A missing key (GET answers false) or a TAT in the past is a full bucket.
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local ahead = tat - now
local capacity = interval * burst

if ahead + interval > capacity then
  return {0, 0, ahead, ahead + interval - capacity}
end

if ARGV[3] ~= '1' then
  return {1, div(capacity - ahead, interval), ahead, 0}
end

local new_ahead = ahead + interval
-- The key lives as long as its bucket is not full; an expired key is a full bucket.
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval),
  'PX', string.format('%.0f', math.ceil(new_ahead / 1000) + 1))
return {1, div(capacity - new_ahead, interval), new_ahead, 0}
