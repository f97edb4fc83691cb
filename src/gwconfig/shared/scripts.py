"""The Lua scripts of the Redis backend: each decision is one script, one round trip, atomic.

Time: each script takes ``now`` in milliseconds as its first argument; an empty string means
"Redis's own clock" (``TIME``), which is what ``serve`` sends, so that replicas whose clocks
differ still share one window. Tests pass their own ``now`` to move a window deterministically.

All keys of one script share a hash tag (``gw:{c:NAME}:...``): on Redis Cluster a script touches
one slot.
"""

from __future__ import annotations

_NOW = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
"""

#: Sliding log of one limit. KEYS[1] the sorted set of admitted requests (score: ms).
#: ARGV: now, window ms, limit, member. Returns {admitted 1|0, remaining, ms until the oldest
#: request leaves the window}: a request is admitted while fewer than ``limit`` were admitted in
#: the last ``window`` ms, so no window of that length ever holds more than ``limit``.
WINDOW = (
    _NOW
    + """
local key, window, limit = KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local reset = 0
if count > 0 then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  reset = tonumber(oldest[2]) + window - now
end
if count < limit then
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('PEXPIRE', key, window)
  if count == 0 then reset = window end
  return {1, limit - count - 1, reset}
end
return {0, 0, reset}
"""
)

#: Reserve a request's worst case against a consumer's tpm and budget.
#: KEYS: [1] tpm buckets (hash: second -> tokens), [2] this period's settled spend (micro-USD),
#: [3] reservations (sorted set: id -> expiry ms), [4] reservation amounts (hash: id ->
#: "micro-USD"), [5] the reservations' total (micro-USD).
#: ARGV: now, tpm (-1: none), tokens, budget micro-USD (-1: none), cost micro-USD, id, expiry ms.
#: Returns {1, bucket second} when reserved; {0, 'tpm', room, wait ms}; {0, 'budget', room};
#: {-1} when the spend counter is missing (rebuild it from the ledger, then call again).
RESERVE = (
    _NOW
    + """
local tpm, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, cost = tonumber(ARGV[4]), tonumber(ARGV[5])
local sec = math.floor(now / 1000)
if budget >= 0 then
  local spent = redis.call('GET', KEYS[2])
  if not spent then return {-1} end
  local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
  for _, id in ipairs(stale) do
    local amount = redis.call('HGET', KEYS[4], id)
    if amount then
      redis.call('DECRBY', KEYS[5], amount)
      redis.call('HDEL', KEYS[4], id)
    end
    redis.call('ZREM', KEYS[3], id)
  end
  local pending = tonumber(redis.call('GET', KEYS[5]) or '0')
  local room = budget - tonumber(spent) - pending
  if cost > room then return {0, 'budget', room} end
end
if tpm >= 0 then
  local fields = redis.call('HGETALL', KEYS[1])
  local used, buckets = 0, {}
  for i = 1, #fields, 2 do
    local s, n = tonumber(fields[i]), tonumber(fields[i + 1])
    if s <= sec - 61 then
      redis.call('HDEL', KEYS[1], fields[i])
    else
      used = used + n
      table.insert(buckets, {s, n})
    end
  end
  if used + tokens > tpm then
    table.sort(buckets, function(a, b) return a[1] < b[1] end)
    local left, wait = used, 60000
    for _, b in ipairs(buckets) do
      left = left - b[2]
      if left + tokens <= tpm then
        wait = (b[1] + 61) * 1000 - now
        break
      end
    end
    return {0, 'tpm', tpm - used, wait}
  end
  redis.call('HINCRBY', KEYS[1], sec, tokens)
  redis.call('EXPIRE', KEYS[1], 120)
end
if budget >= 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[6], cost)
  redis.call('INCRBY', KEYS[5], cost)
  local ttl = redis.call('TTL', KEYS[2])
  if ttl > 0 then
    for i = 3, 5 do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return {1, sec}
"""
)

#: Settle (or release) a reservation. KEYS as :data:`RESERVE`. ARGV: id, cost micro-USD to add
#: to the spend (0: release), tpm bucket second ('' : none), token change (actual - reserved).
#: Spend is added only while the counter exists: a missing one is rebuilt from the ledger, which
#: has this request's usage record.
FINISH = """
local amount = redis.call('HGET', KEYS[4], ARGV[1])
if amount then
  redis.call('DECRBY', KEYS[5], amount)
  redis.call('HDEL', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
local cost = tonumber(ARGV[2])
if cost > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCRBY', KEYS[2], cost)
end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[3], tonumber(ARGV[4]))
end
return 1
"""
