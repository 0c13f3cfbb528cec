-- POSTs BODY_FILE; with DISTINCT=1 every request carries a unique variable no operation uses,
-- so no two requests can share an execution (the "distinct" load shape).
local body_file = os.getenv("BODY_FILE")
local distinct = os.getenv("DISTINCT") == "1"
local query = io.open(body_file, "r"):read("*a")
local counter = 0
local thread_id = 0
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
local extra = os.getenv("EXTRA_HEADERS") or ""
for name, value in string.gmatch(extra, "([^=;]+)=([^;]+)") do headers[name] = value end

function setup(thread)
  thread_id = thread_id + 1
  thread:set("id", thread_id)
end

function request()
  counter = counter + 1
  local body
  if distinct then
    body = '{"query":' .. query .. ',"variables":{"nonce":"' .. (id or 0) .. "-" .. counter .. '"}}'
  else
    body = '{"query":' .. query .. '}'
  end
  return wrk.format("POST", nil, headers, body)  -- nil: the path of the URL wrk was given
end

-- An answer with GraphQL errors, or not 200, is a failed request: wrk alone only sees HTTP.
failures = 0
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    failures = failures + 1
    if failures <= 3 then  -- a few samples, for results/wrk/ (stderr)
      io.stderr:write("failed: " .. status .. " " .. string.sub(body, 1, 500) .. "\n")
    end
  end
end

threads = {}
local init_setup = setup
function setup(thread)
  init_setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("failures") or 0)
  end
  io.write(string.format("GraphQL failures: %d\n", total))
end
