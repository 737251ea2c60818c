-- POST /api/auth/login with the e-mails and password of the people bench/people.py made through
-- invite + accept (BENCH_LOGIN_EMAIL, comma separated, and BENCH_LOGIN_PASSWORD). Always the right password: failed
-- logins are throttled, successful ones are not. Each answer is a new session (a write), after an
-- argon2id verification (m = 19 MiB, t = 2, p = 1), so this measures the hashing bound.
-- No Authorization header: logging in needs none.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local function json_string(s)
   return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local bodies = {}
local next_body = 1

function init(args)
   bench.init_thread({ auth = false })
   wrk.method = "POST"
   wrk.path = "/api/auth/login"
   wrk.headers["Content-Type"] = "application/json"
   -- BENCH_LOGIN_EMAIL holds several accounts (comma separated): requests take turns, so that
   -- no account has more than a few logins in flight (the server refuses more than 5).
   local password = json_string(bench.env("BENCH_LOGIN_PASSWORD"))
   for email in string.gmatch(bench.env("BENCH_LOGIN_EMAIL"), "[^,]+") do
      bodies[#bodies + 1] = '{"email":' .. json_string(email) .. ',"password":' .. password .. '}'
   end
   -- Threads start at different accounts.
   next_body = (math.random(1, #bodies) - 1) % #bodies + 1
end

function request()
   local body = bodies[next_body]
   next_body = next_body % #bodies + 1
   return wrk.format(nil, nil, nil, body)
end
