-- POST /api/organizations/{id}/upload-avatar with a decompression bomb: a PNG whose header
-- declares 50000 x 50000 RGBA (BENCH_AVATAR_BODY, made by bench/avatars.py), on the same
-- organization and with the same fixed boundary as avatar_upload.lua. Every answer must be a 422
-- naming `image_too_large`: the script counts the others (any other status, or a 422 for another
-- reason) per thread in the global `bad`, and the RESULT line gets their sum as non422=N; run.sh
-- fails loudly on any.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local req

function init(args)
   bench.init_thread()
   bad = 0
   wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. bench.env("BENCH_AVATAR_BOUNDARY")
   local path = "/api/organizations/" .. bench.env("BENCH_AVATAR_ORG") .. "/upload-avatar"
   req = wrk.format("POST", path, nil, bench.read_file(bench.env("BENCH_AVATAR_BODY")))
end

function request()
   return req
end

-- common.lua's count (every status outside 2xx, by status), then this script's own.
local count_status = response
function response(status, headers, body)
   count_status(status, headers, body)
   if status ~= 422 or body == nil or not string.find(body, "image_too_large", 1, true) then
      bad = bad + 1
   end
end

function bench.result_extra()
   local n = 0
   for _, t in ipairs(bench.threads) do
      n = n + (t:get("bad") or 0)
   end
   return string.format(" non422=%d", n)
end
