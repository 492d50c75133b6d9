-- The node registry: one sorted set of node ids scored by their expiry in
-- Redis server time (ms), and per node a key holding its info. Reading it
-- costs O(live nodes), never a scan of the keyspace.
--
-- KEYS[1] the registry sorted set
-- ARGV[1] op: "beat", "claim" or "list"
-- beat: ARGV[2] node id   ARGV[3] TTL, ms   ARGV[4] info key   ARGV[5] info
-- claim: ARGV[2] node id   ARGV[3] TTL, ms
-- list: ARGV[2] the info keys' prefix (the node id follows)
--
-- The info keys are not in KEYS; on a Redis Cluster they share the
-- registry's hash tag, so that they are on its slot.
--
-- beat renews the node's entry and info, and takes out the entries of up
-- to 100 other nodes that expired (crashed nodes): it returns {id, ms since
-- its entry expired, ...} for them. A script is atomic, so exactly one
-- live node takes out a given expired entry, and it alone sweeps that
-- node's rooms (see sweep.go). claim adds the node's entry (without info:
-- list shows it from its first beat) and returns 1, unless a live node has
-- that id: then it returns 0 and changes nothing (an expired entry it
-- replaces is of a previous life of the id, which the new life sweeps).
-- list returns {id, info, ...} for the live nodes whose info is there; it
-- leaves expired entries to beat.
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if ARGV[1] == 'beat' then
  local ttl = tonumber(ARGV[3])
  local dead = {}
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, 100)
  for i = 1, #expired, 2 do
    local id = expired[i]
    if id ~= ARGV[2] then
      redis.call('ZREM', KEYS[1], id)
      dead[#dead + 1] = id
      dead[#dead + 1] = now - tonumber(expired[i + 1])
    end
  end
  redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[2])
  redis.call('SET', ARGV[4], ARGV[5], 'PX', ttl)
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return dead
elseif ARGV[1] == 'claim' then
  local ttl = tonumber(ARGV[3])
  local expires = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if expires and tonumber(expires) > now then
    return 0
  end
  redis.call('ZADD', KEYS[1], string.format('%d', now + ttl), ARGV[2])
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
  return 1
elseif ARGV[1] == 'list' then
  local out = {}
  local prefix = ARGV[2]
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
    local info = redis.call('GET', prefix .. id)
    if info then
      out[#out + 1] = id
      out[#out + 1] = info
    end
  end
  return out
end
return redis.error_reply('registry: unknown op ' .. ARGV[1])
