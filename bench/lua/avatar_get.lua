-- GET /avatars/{org}/{hash}-512.jpg (or .png: whichever the server stores): the avatar bench/avatars.py uploaded, served from disk
-- (BENCH_AVATAR_PATH, the path of its avatarUrl). No credential: avatars are public.
--
-- Unlike the other scripts, this one does not define response(): when a script does, wrk copies
-- every answer's body into a Lua string for it, and at a few hundred KB an answer that copying,
-- on the cores the server shares with wrk, halves the req/s measured. The non-2xx count is wrk's
-- own ("Non-2xx or 3xx responses", statuses above 399), which run.sh reads as wrk_non2xx3xx and
-- the summary uses; non2xx= and statuses= on the RESULT line stay 0 and -.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

response = nil

local req

function init(args)
   bench.init_thread({ auth = false })
   req = wrk.format("GET", bench.env("BENCH_AVATAR_PATH"))
end

function request()
   return req
end
