-- GET /api/organizations/{id}/members?page=N&per_page=15 on the organization bench/people.py
-- filled (BENCH_MEMBERS_ORG), with the platform key. The page is fixed per run
-- (BENCH_MEMBERS_PAGE: 1 for members_p1, 5000 for members_p5000), so wrk sends one prebuilt
-- request each time.
dofile((os.getenv("BENCH_LUA_DIR") or "bench/lua") .. "/common.lua")

function init(args)
   bench.init_thread()
   local org = bench.env("BENCH_MEMBERS_ORG")
   local page = bench.env("BENCH_MEMBERS_PAGE")
   local per_page = bench.env("BENCH_MEMBERS_PER_PAGE", "15")
   wrk.method = "GET"
   wrk.path = "/api/organizations/" .. org .. "/members?page=" .. page .. "&per_page=" .. per_page
end
