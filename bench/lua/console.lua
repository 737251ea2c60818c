-- The console's pages, signed in: GET BENCH_PATH with the console's cookie holding BENCH_KEY.
-- "{id}" in the path is replaced by a random line of BENCH_IDS_FILE for each request.
-- done() prints one RESULT line (bench/console.sh reads it).
local key = os.getenv("BENCH_KEY")
local path = os.getenv("BENCH_PATH")
local label = os.getenv("BENCH_PAGE") or path
local ids_file = os.getenv("BENCH_IDS_FILE")
local ids, n = {}, 0

wrk.headers["Cookie"] = "orgbase_console=" .. key

function init(args)
   if ids_file and path:find("{id}", 1, true) then
      for line in io.lines(ids_file) do
         n = n + 1
         ids[n] = line
      end
   end
end

function request()
   if n > 0 then
      return wrk.format("GET", (path:gsub("{id}", ids[math.random(n)])))
   end
   return wrk.format("GET", path)
end

function done(summary, latency, requests)
   io.write(string.format(
      "RESULT page=%s rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d errors=%d\n",
      label,
      summary.requests / (summary.duration / 1e6),
      latency:percentile(50) / 1000,
      latency:percentile(99) / 1000,
      summary.requests,
      summary.errors.status,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
