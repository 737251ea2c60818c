-- POST /api/organizations/{id}/upload-avatar on the one organization bench/avatars.py made
-- (BENCH_AVATAR_ORG), with the platform key: the same prebuilt multipart body every time
-- (BENCH_AVATAR_BODY: the 1200 x 850 JPEG in the field `file`, framed by the fixed boundary
-- BENCH_AVATAR_BOUNDARY). A 200 must carry "success":true; one without counts as unexpected.
-- The request is built once per thread: the body is a few hundred KB.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

local req

function init(args)
   bench.init_thread()
   bench.expect_body = '"success":true'
   wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. bench.env("BENCH_AVATAR_BOUNDARY")
   local path = "/api/organizations/" .. bench.env("BENCH_AVATAR_ORG") .. "/upload-avatar"
   req = wrk.format("POST", path, nil, bench.read_file(bench.env("BENCH_AVATAR_BODY")))
end

function request()
   return req
end
