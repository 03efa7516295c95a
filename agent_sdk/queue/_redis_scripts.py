"""The Lua scripts of the Redis queue: each operation is one script, so it is atomic.

Keys, under the prefix ``agent-sdk:q:<name>:`` (ARGV[1] of every script):

* ``stream`` with the consumer group ``workers``: ready jobs, one entry (field ``id``) each.
  An entry stays in the group's pending list while its job is leased; ack, retry and dead
  XACK and XDEL it, so the stream holds only ready and leased jobs.
* ``job:<id>``, a hash: id, kind, payload, attempts, enqueued_at, available_at, state
  (ready | delayed | leased | dead), entry (its stream entry), token, worker, expires,
  last_error, died_at. The lease token lives here, so every check of it is one HGET.
* ``delayed``, a sorted set of job ids by due time; ``reserve`` moves due ones into the stream.
* ``leases``, a sorted set of leased job ids by lease expiry; ``reserve`` takes the oldest
  expired one (XCLAIM moves its pending entry to the new consumer).
* ``dead``, a sorted set of dead job ids by the time they died.

Times are the Redis server's (TIME), in seconds with microseconds, stored as ``%.6f`` strings:
workers on machines with skewed clocks agree on when a lease ends, and Lua numbers are
truncated to integers in replies, so every time goes back as text.
"""

from __future__ import annotations

_HEAD = """
local P = ARGV[1]
local S = P .. 'stream'
local G = 'workers'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
local function jobkey(id) return P .. 'job:' .. id end
local function ensure()
  if redis.call('EXISTS', S) == 0 then
    redis.call('XGROUP', 'CREATE', S, G, '0', 'MKSTREAM')
  end
end
local function push(id)
  ensure()
  local e = redis.call('XADD', S, '*', 'id', id)
  redis.call('HSET', jobkey(id), 'state', 'ready', 'entry', e, 'available_at', fmt(now))
end
local function drop_entry(entry)
  if entry then
    redis.call('XACK', S, G, entry)
    redis.call('XDEL', S, entry)
  end
end
"""

# The lease checks of extend/ack/retry/dead: the job must carry this token and be leased.
_HOLDING = """
local id, token = ARGV[2], ARGV[3]
local k = jobkey(id)
local job = redis.call('HMGET', k, 'token', 'state', 'entry')
if job[1] ~= token or job[2] ~= 'leased' then return false end
local function release()
  drop_entry(job[3])
  redis.call('ZREM', P .. 'leases', id)
  redis.call('HDEL', k, 'token', 'worker', 'expires', 'entry')
end
"""

# ARGV: prefix, id, kind, payload, delay. Returns the job (HGETALL), new or the existing one.
ENQUEUE = (
    _HEAD
    + """
local id, delay = ARGV[2], tonumber(ARGV[5])
local k = jobkey(id)
if redis.call('EXISTS', k) == 0 then
  redis.call('HSET', k, 'id', id, 'kind', ARGV[3], 'payload', ARGV[4], 'attempts', '0',
             'enqueued_at', fmt(now), 'available_at', fmt(now + delay))
  if delay > 0 then
    redis.call('HSET', k, 'state', 'delayed')
    redis.call('ZADD', P .. 'delayed', fmt(now + delay), id)
  else
    push(id)
  end
end
return redis.call('HGETALL', k)
"""
)

# ARGV: prefix, consumer (the worker), lease seconds, token, orphan min-idle (ms), and, after a
# blocking XREADGROUP delivered an entry outside the script, its entry id and job id.
# Returns {'ok', expires, job} or {'wait', seconds until the next delayed job or lease is due}.
RESERVE = (
    _HEAD
    + """
local consumer, token = ARGV[2], ARGV[4]
local function lease(id, entry)
  local k = jobkey(id)
  local exp = now + tonumber(ARGV[3])
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('HSET', k, 'state', 'leased', 'token', token, 'worker', consumer,
             'expires', fmt(exp))
  if entry then redis.call('HSET', k, 'entry', entry) end
  redis.call('ZADD', P .. 'leases', fmt(exp), id)
  return {'ok', fmt(exp), redis.call('HGETALL', k)}
end
-- an entry is still wanted if its job is ready and points at it
local function wanted(id, entry)
  local job = redis.call('HMGET', jobkey(id), 'state', 'entry')
  return job[1] == 'ready' and job[2] == entry
end
ensure()
if ARGV[6] then
  if wanted(ARGV[7], ARGV[6]) then return lease(ARGV[7], ARGV[6]) end
  drop_entry(ARGV[6])
end
-- 1. delayed jobs that are due join the stream, in due order
local due = redis.call('ZRANGEBYSCORE', P .. 'delayed', '-inf', fmt(now), 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', P .. 'delayed', id)
  if redis.call('HGET', jobkey(id), 'state') == 'delayed' then push(id) end
end
-- 2. the oldest expired lease: its holder is dead or late; the job is ours now
for _ = 1, 100 do
  local expired = redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', fmt(now), 'LIMIT', 0, 1)
  if #expired == 0 then break end
  local id = expired[1]
  local entry = redis.call('HGET', jobkey(id), 'entry')
  if redis.call('HGET', jobkey(id), 'state') == 'leased' then
    if entry then redis.call('XCLAIM', S, G, consumer, 0, entry, 'JUSTID') end
    return lease(id, entry)
  end
  redis.call('ZREM', P .. 'leases', id)
end
-- 3. entries a consumer read but died before leasing (between XREADGROUP and this script)
local claimed = redis.call('XAUTOCLAIM', S, G, consumer, ARGV[5], '0-0', 'COUNT', 10, 'JUSTID')
for _, entry in ipairs(claimed[2]) do
  local found = redis.call('XRANGE', S, entry, entry)
  if #found == 0 then
    redis.call('XACK', S, G, entry)
  else
    local id = found[1][2][2]
    local state = redis.call('HMGET', jobkey(id), 'state', 'entry')
    if state[2] ~= entry then
      drop_entry(entry)
    elseif state[1] == 'ready' then
      return lease(id, entry)
    end
  end
end
-- 4. the oldest ready job
for _ = 1, 100 do
  local got = redis.call('XREADGROUP', 'GROUP', G, consumer, 'COUNT', 1, 'STREAMS', S, '>')
  if not got then break end
  local entry = got[1][2][1]
  local id = entry[2][2]
  if wanted(id, entry[1]) then return lease(id, entry[1]) end
  drop_entry(entry[1])
end
local next_due = nil
for _, z in ipairs({'delayed', 'leases'}) do
  local first = redis.call('ZRANGE', P .. z, 0, 0, 'WITHSCORES')
  if #first > 0 then
    local at = tonumber(first[2])
    if next_due == nil or at < next_due then next_due = at end
  end
end
if next_due == nil then return {'wait', ''} end
return {'wait', fmt(math.max(0, next_due - now))}
"""
)

# ARGV: prefix, id, token, seconds. Returns the new expiry, or nil when the lease was lost.
EXTEND = (
    _HEAD
    + _HOLDING
    + """
local exp = now + tonumber(ARGV[4])
redis.call('HSET', k, 'expires', fmt(exp))
redis.call('ZADD', P .. 'leases', fmt(exp), id)
return fmt(exp)
"""
)

# ARGV: prefix, id, token. Returns 1, or nil when the lease was lost.
ACK = (
    _HEAD
    + _HOLDING
    + """
release()
redis.call('DEL', k)
return 1
"""
)

# ARGV: prefix, id, token, delay, error.
RETRY = (
    _HEAD
    + _HOLDING
    + """
release()
local delay = tonumber(ARGV[4])
redis.call('HSET', k, 'last_error', ARGV[5])
if delay > 0 then
  redis.call('HSET', k, 'state', 'delayed', 'available_at', fmt(now + delay))
  redis.call('ZADD', P .. 'delayed', fmt(now + delay), id)
else
  push(id)
end
return 1
"""
)

# ARGV: prefix, id, token, error.
DEAD = (
    _HEAD
    + _HOLDING
    + """
release()
redis.call('HSET', k, 'state', 'dead', 'last_error', ARGV[4], 'died_at', fmt(now))
redis.call('ZADD', P .. 'dead', fmt(now), id)
return 1
"""
)

# ARGV: prefix, id. Returns {'ok', job}, or {'missing'} / {state} when it is not dead.
REQUEUE_DEAD = (
    _HEAD
    + """
local id = ARGV[2]
local k = jobkey(id)
local state = redis.call('HGET', k, 'state')
if not state then return {'missing'} end
if state ~= 'dead' then return {state} end
redis.call('ZREM', P .. 'dead', id)
redis.call('HDEL', k, 'died_at')
redis.call('HSET', k, 'attempts', '0')
push(id)
return {'ok', redis.call('HGETALL', k)}
"""
)

# ARGV: prefix. Returns {ready, delayed, leased, dead}. The stream holds ready and pending
# (leased) entries, so ready = its length - the pending count + expired leases + due delays.
DEPTH = (
    _HEAD
    + """
ensure()
local pending = redis.call('XPENDING', S, G)[1]
local n = fmt(now)
local expired = redis.call('ZCOUNT', P .. 'leases', '-inf', n)
local due = redis.call('ZCOUNT', P .. 'delayed', '-inf', n)
return {
  redis.call('XLEN', S) - pending + expired + due,
  redis.call('ZCOUNT', P .. 'delayed', '(' .. n, '+inf'),
  redis.call('ZCOUNT', P .. 'leases', '(' .. n, '+inf'),
  redis.call('ZCARD', P .. 'dead'),
}
"""
)

# ARGV: prefix, limit. Returns the dead jobs (HGETALL each), the most recently dead first.
LIST_DEAD = (
    _HEAD
    + """
local out = {}
for _, id in ipairs(redis.call('ZREVRANGE', P .. 'dead', 0, tonumber(ARGV[2]) - 1)) do
  table.insert(out, redis.call('HGETALL', jobkey(id)))
end
return out
"""
)
