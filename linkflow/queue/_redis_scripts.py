"""The Lua scripts of the Redis queue (`queue.redis_streams`): each is atomic in Redis, so
what it checks still holds when it acts (an entry still pending, a delayed job still due).

Times are Redis's own (`TIME`, in milliseconds), so producers' clocks do not matter.
"""

from __future__ import annotations

from typing import Final

__all__ = ["BURY", "DELAY", "READ", "REQUEUE"]

_NOW: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

READ: Final = (
    _NOW
    + """
local group, consumer = ARGV[1], ARGV[2]
local remaining, limit = tonumber(ARGV[3]), tonumber(ARGV[5])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, member in ipairs(due) do
  local ok, entry = pcall(cjson.decode, member)
  local p = ok and type(entry) == 'table' and tonumber(entry.p)
  if p and (p == 1 or p == 2 or p == 3) and type(entry.j) == 'string' then
    redis.call('XADD', KEYS[p + 1], '*', 'job', entry.j, 'attempt', tostring(entry.a or 1))
  else
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[10], '*', 'job', member, 'attempts', 0,
               'reason', 'the delayed entry cannot be decoded', 'at', ARGV[9])
  end
  redis.call('ZREM', KEYS[1], member)
end
local until_next = -1
local next_due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next_due[2] then until_next = tonumber(next_due[2]) - now end
local ready = {}
for lane = 1, 3 do
  ready[lane] = false
  if string.sub(ARGV[8], lane, lane) == '1' then
    local groups = redis.pcall('XINFO', 'GROUPS', KEYS[lane + 1])
    if groups['err'] then return {1, until_next, 0, 0} end
    local last = nil
    for _, info in ipairs(groups) do
      local fields = {}
      for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
      if fields['name'] == group then last = fields['last-delivered-id'] end
    end
    if not last then return {1, until_next, 0, 0} end
    ready[lane] = #redis.call('XRANGE', KEYS[lane + 1], '(' .. last, '+', 'COUNT', 1) > 0
  end
end
local passed = {0, tonumber(ARGV[6]), tonumber(ARGV[7])}
local out = {0, until_next, 0, 0}
while remaining > 0 do
  local chosen, overdue = nil, false
  for lane = 1, 3 do
    if ready[lane] then
      if not chosen then
        chosen = lane
      elseif passed[lane] >= limit then
        chosen, overdue = lane, true
        break
      end
    end
  end
  if not chosen then break end
  local n = remaining
  if overdue then
    n = 1
  else
    for lane = chosen + 1, 3 do
      if ready[lane] then n = math.min(n, math.max(1, limit - passed[lane])) end
    end
  end
  local reply = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', n,
                           'STREAMS', KEYS[chosen + 1], '>')
  local entries = {}
  if reply then entries = reply[1][2] end
  if #entries < n then ready[chosen] = false end
  for _, entry in ipairs(entries) do
    local fields = {}
    for i = 1, #entry[2], 2 do fields[entry[2][i]] = entry[2][i + 1] end
    out[#out + 1] = chosen
    out[#out + 1] = entry[1]
    if fields['job'] then
      out[#out + 1] = fields['job']
      out[#out + 1] = fields['attempt'] or false
    else
      out[#out + 1] = false
      out[#out + 1] = cjson.encode(fields)
    end
  end
  remaining = remaining - #entries
  for lane = 1, 3 do
    if lane == chosen or not ready[lane] then
      passed[lane] = 0
    elseif lane > chosen then
      passed[lane] = passed[lane] + #entries
    end
  end
end
out[3], out[4] = passed[2], passed[3]
return out
"""
)
"""Move the due delayed jobs to their streams, then take up to `count` ready entries for
this consumer under the pass-over rule (`queue.local`'s: strict priority, except that a
lane with ready entries passed over `limit` times in a row gets the next take; normal
before low), from the lanes this consumer reads only. A delayed member that cannot be
decoded goes to the dead letters (it would fail every read). KEYS: delayed, the streams
in priority order, dead. ARGV: group, consumer, count, move batch, limit, passed-over
counts of normal and low, the lanes read ("110": high and normal), the time for a dead
letter, the dead letters' cap. Returns: status (0, or 1 when a stream or its group is
missing: Redis lost its data), ms until the next delayed job is due (-1: none), the new
passed-over counts, then (lane 1-3, entry id, job, attempt) per entry, in the order to
hand them out; an entry without a `job` field has nil there, and its fields as JSON in
place of the attempt (its raw text, for the dead letter)."""

DELAY: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return 1
"""
)
"""KEYS: delayed. ARGV: delay ms, member."""

REQUEUE: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
local delay = tonumber(ARGV[3])
if delay <= 0 then
  redis.call('XADD', KEYS[1], '*', 'job', ARGV[4], 'attempt', ARGV[5])
else
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + delay, ARGV[6])
end
return 1
"""
"""Nack and reclaim: only a still-pending entry is queued again (a new entry: a new
receipt). KEYS: the entry's stream, delayed. ARGV: group, entry id, delay ms, job, next
attempt, delayed member. Returns 1 if it acted, 0 for a stale receipt."""

BURY: Final = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
           'job', ARGV[4], 'attempts', ARGV[5], 'reason', ARGV[6], 'at', ARGV[7])
return 1
"""
"""Dead-letter a still-pending entry. KEYS: the entry's stream, dead. ARGV: group, entry
id, cap, job, attempts, reason, time."""
