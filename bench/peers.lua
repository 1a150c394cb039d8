-- wrk script of bench/peers.ts: POSTs the bodies of PEERS_BODIES (one JSON
-- body a line) in order, each once (or round and round with PEERS_CYCLE=1),
-- with PEERS_AUTH as the Authorization header when set. An answer fails when
-- its status is not 200, it contains PEERS_FAIL_IF, or it lacks PEERS_OK_IF.
-- Prints one line, PEERS {json}, for bench/peers.ts to read.
local bodies = {}
for line in io.lines(os.getenv("PEERS_BODIES")) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
local auth = os.getenv("PEERS_AUTH") or ""
local cycle = os.getenv("PEERS_CYCLE") == "1"
local failIf = os.getenv("PEERS_FAIL_IF") or ""
local okIf = os.getenv("PEERS_OK_IF") or ""
local headers = { ["Content-Type"] = "application/json" }
if #auth > 0 then headers["Authorization"] = auth end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

next_body = 0
errors = 0
exhausted = false

function request()
  next_body = next_body + 1
  if next_body > #bodies then
    if cycle then
      next_body = 1
    else
      -- Nothing left to send: this thread stops; the rate counts only what succeeded.
      exhausted = true
      next_body = #bodies
      wrk.thread:stop()
    end
  end
  return wrk.format("POST", nil, headers, bodies[next_body])
end

function response(status, _, body)
  if status ~= 200 or (#failIf > 0 and string.find(body, failIf, 1, true)) or (#okIf > 0 and not string.find(body, okIf, 1, true)) then
    errors = errors + 1
  end
end

function done(summary, latency, _)
  local e, x = 0, false
  for _, t in ipairs(threads) do
    e = e + t:get("errors")
    x = x or t:get("exhausted")
  end
  local s = summary.errors
  io.write(string.format(
    'PEERS {"requests":%d,"durationUs":%d,"errors":%d,"exhausted":%s,"p50us":%d,"p99us":%d,"socketErrors":%d}\n',
    summary.requests, summary.duration, e, tostring(x), latency:percentile(50), latency:percentile(99),
    s.connect + s.read + s.write + s.timeout))
end
