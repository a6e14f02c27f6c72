"""wrk Lua scripts used by ``bench/load.py`` (written to a temp directory at run time).

Every script ends with the same ``done`` hook, which prints one ``WRKJSON {...}`` line with the
request count, the duration, the error counters and latency percentiles in microseconds.
Per-thread Lua states are numbered in ``setup`` so each thread seeds its own random sequence.
"""

from __future__ import annotations

_COMMON = r"""
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local function load_lines(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then out[#out + 1] = line end
  end
  return out
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,' ..
    '"max":%d,"mean":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,' ..
    '"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""

# GET <prefix><random id><suffix>; args: ids file, prefix, suffix[, bearer access token]
RANDOM_GET = _COMMON + r"""
local ids, prefix, suffix
local headers = {["Accept"] = "application/fhir+json"}
function init(args)
  ids = load_lines(args[1])
  prefix = args[2]
  suffix = args[3] or ""
  if args[4] then headers["Authorization"] = "Bearer " .. args[4] end
  math.randomseed(os.time() * 100 + (tid or 0))
end
function request()
  return wrk.format("GET", prefix .. ids[math.random(#ids)] .. suffix, headers)
end
"""

# GET of the URL's own path (system history): no args
STATIC_GET = _COMMON + r"""
wrk.headers["Accept"] = "application/fhir+json"
"""

# POST /fhir/Patient; args: body template file (with __N__ replaced by a per-request number)
CREATE = _COMMON + r"""
local template
local n = 0
local headers = {["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json"}
function init(args)
  template = read_file(args[1])
end
function request()
  n = n + 1
  local body = template:gsub("__N__", string.format("%d%08d", tid or 0, n))
  return wrk.format("POST", "/fhir/Patient", headers, body)
end
"""

# PUT /fhir/Patient/<random pool id>; args: ids file, body template file (__ID__ replaced)
UPDATE = _COMMON + r"""
local ids, template
local n = 0
local headers = {["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json"}
function init(args)
  ids = load_lines(args[1])
  template = read_file(args[2])
  math.randomseed(os.time() * 100 + (tid or 0))
end
function request()
  n = n + 1
  local id = ids[math.random(#ids)]
  local body = template:gsub("__ID__", id):gsub("__N__", string.format("%d%08d", tid or 0, n))
  return wrk.format("PUT", "/fhir/Patient/" .. id, headers, body)
end
"""
