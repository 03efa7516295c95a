-- Create-and-wait chains for wrk, used by bench/create_wait_wrk.py.
--
-- Run wrk with as many threads as connections (-t32 -c32): wrk gives every thread its own Lua
-- state, so with one connection per thread this state is the connection's, and each connection
-- loops: POST a run, then GET the wait path for that run's id, then POST again.
--
-- Arguments after "--": create path, wait path with one %s for the run id, bearer token ("" for
-- none). A chain counts as a run when the create answered 201 and the wait answered 200 with a
-- body that says "succeeded"; anything else counts as a failure and starts a new chain.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  create_path, wait_format = args[1], args[2]
  runs, failures, run_id = 0, 0, nil
  create_body = '{"agent": {"name": "noop", "model": "scripted", "script": [{"text": "ok"}]}, "input": "hi"}'
  create_headers = { ["Content-Type"] = "application/json" }
  wait_headers = { ["Accept"] = "text/event-stream" }
  if args[3] and args[3] ~= "" then
    create_headers["Authorization"] = "Bearer " .. args[3]
    wait_headers["Authorization"] = "Bearer " .. args[3]
  end
end

function request()
  if run_id then
    return wrk.format("GET", string.format(wait_format, run_id), wait_headers)
  end
  return wrk.format("POST", create_path, create_headers, create_body)
end

function response(status, headers, body)
  if run_id then
    run_id = nil
    if status == 200 and body:find("succeeded", 1, true) then
      runs = runs + 1
    else
      failures = failures + 1
    end
  elseif status == 201 then
    run_id = body:match('"id"%s*:%s*"([^"]+)"')
    if not run_id then
      failures = failures + 1
    end
  else
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local total, failed = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("runs")
    failed = failed + thread:get("failures")
  end
  io.write(string.format("chained runs: %d failures: %d runs/s: %.2f\n",
    total, failed, total / (summary.duration / 1e6)))
end
