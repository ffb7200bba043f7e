"""The Lua scripts behind ``RedisCounters``. Each runs atomically in Redis and reads the clock from Redis
(``TIME``), so every replica sees one clock. Numbers go back as strings (Lua numbers would be truncated)."""

from __future__ import annotations

# KEYS: bucket hashes {tokens, ts}. ARGV: per bucket (capacity, rate per second, cost).
# Returns {ok, wait_seconds, level1, level2, ...}; takes from every bucket or from none.
TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels, wait = {}, 0
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(h[1]), tonumber(h[2])
  if tokens == nil then tokens, ts = cap, now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  if tokens < cost then wait = math.max(wait, (cost - tokens) / rate) end
end
local out = {}
if wait > 0 then
  out[1], out[2] = 0, tostring(wait)
  for i = 1, #KEYS do out[i+2] = tostring(levels[i]) end
  return out
end
out[1], out[2] = 1, '0'
for i = 1, #KEYS do
  local cap, rate, cost = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local left = levels[i] - cost
  redis.call('HSET', KEYS[i], 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 1000) + 1000)
  out[i+2] = tostring(left)
end
return out
"""

# KEYS: bucket hashes. ARGV: per bucket (capacity, rate, delta). Takes ``delta`` more tokens (negative gives
# back), unchecked, kept within [-capacity, capacity]: reconciling an estimate with real usage.
ADJUST = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
for i = 1, #KEYS do
  local cap, rate, delta = tonumber(ARGV[3*i-2]), tonumber(ARGV[3*i-1]), tonumber(ARGV[3*i])
  local h = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens, ts = tonumber(h[1]), tonumber(h[2])
  if tokens == nil then tokens, ts = cap, now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate) - delta
  tokens = math.max(-cap, math.min(cap, tokens))
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(cap / rate * 2000) + 1000)
end
return 1
"""

# KEYS: slot sorted sets (member = lease id, score = expiry ms). ARGV: lease id, ttl ms, limit per key.
# Returns {1, 0} when every slot was taken, else {0, index of the full one}. Idempotent: a lease already held
# (a retry after a lost reply) succeeds again.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease, ttl = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  local held = redis.call('ZSCORE', KEYS[i], lease)
  if not held and redis.call('ZCARD', KEYS[i]) >= tonumber(ARGV[i+2]) then return {0, i} end
end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + ttl, lease)
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return {1, 0}
"""

# KEYS: one slot sorted set. Returns how many leases in it have not expired.
IN_FLIGHT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

# KEYS: sorted sets holding ``lease``. ARGV: lease id. Removes it everywhere.
RELEASE = """
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[1]) end
return 1
"""

# KEYS: sorted sets; ARGV: ttl ms, then one member per key. Pushes the expiry of held leases forward.
RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', now + ttl, ARGV[i+1])
  redis.call('PEXPIRE', KEYS[i], ttl * 2)
end
return 1
"""

# KEYS: per budget, its hash {spent} then its reservations sorted set (member "lease|estimate", score expiry ms).
# ARGV: member ("lease|estimate", built by the caller so settling can remove it exactly), estimate, lease ttl
# ms, then per budget (limit, keep seconds or -1, initial spend or -1).
# Admits while spent + reserved < limit for every budget, then reserves the estimate in each.
# Returns {1, 0, spent...} or {0, index of the spent budget, spent...}. Idempotent: a member already reserved (a
# retry after a lost reply) is admitted again without a second reservation.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member, ttl = ARGV[1], tonumber(ARGV[3])
local n = #KEYS / 2
local spent = {}
local refused = 0
local again = redis.call('ZSCORE', KEYS[2], member)
for i = 1, n do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  local limit, initial = tonumber(ARGV[3*i+1]), tonumber(ARGV[3*i+3])
  if initial >= 0 and redis.call('EXISTS', h) == 0 then redis.call('HSET', h, 'spent', tostring(initial)) end
  spent[i] = tonumber(redis.call('HGET', h, 'spent') or '0')
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  local reserved = 0
  for _, member in ipairs(redis.call('ZRANGE', z, 0, -1)) do
    reserved = reserved + tonumber(string.match(member, '|([^|]+)$'))
  end
  if refused == 0 and not again and spent[i] + reserved >= limit then refused = i end
end
local out = {refused == 0 and 1 or 0, refused}
for i = 1, n do out[i+2] = tostring(spent[i]) end
if refused > 0 then return out end
for i = 1, n do
  local h, z, keep = KEYS[2*i-1], KEYS[2*i], tonumber(ARGV[3*i+2])
  redis.call('ZADD', z, now + ttl, member)
  redis.call('PEXPIRE', z, ttl * 2)
  if keep > 0 then redis.call('EXPIRE', h, math.ceil(keep)) end
end
return out
"""

# KEYS: per budget, hash then reservations set. ARGV: member, actual cost, seconds to remember the debit.
# Drops the reservation and adds the real cost to ``spent`` exactly once per member: a settle whose reply was
# lost (timeout) and is replayed later from the journal is not counted twice.
SETTLE = """
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  redis.call('ZREM', z, ARGV[1])
  if redis.call('SET', h .. ':s:' .. ARGV[1], '1', 'NX', 'EX', tonumber(ARGV[3])) then
    redis.call('HINCRBYFLOAT', h, 'spent', ARGV[2])
  end
end
return 1
"""
