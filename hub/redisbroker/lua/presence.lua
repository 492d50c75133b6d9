-- Presence of users in a room, one sorted set per room: member
-- user "|" node, score the entry's expiry in Redis server time (ms).
--
-- KEYS[1] the room's presence set
-- ARGV[1] op: "add", "remove", "refresh" or "members"
-- ARGV[2] node   ARGV[3] TTL, ms   ARGV[4...] users (one for add and remove)
--
-- add and remove scan the room's entries, O(entries): fine for rooms of
-- thousands of members.
--
-- add returns 1 when the user had no live entry, on any node, before;
-- remove returns 1 when the user has none left; refresh returns the users
-- whose entry of this node was gone (it does not add them back); members
-- returns the live members.
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local expiry = string.format('%d', now + ttl)

if op == 'members' then
  if redis.call('ZCOUNT', KEYS[1], '-inf', now) > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  end
  return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

-- keep the set itself at least as long as its newest entry
local function extend()
  if redis.call('PTTL', KEYS[1]) < ttl then
    redis.call('PEXPIRE', KEYS[1], ttl)
  end
end

-- present reports whether user has a live entry on any node.
local function present(user)
  local prefix = user .. '|'
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
    if string.sub(m, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end

if op == 'add' then
  local first = present(ARGV[4]) and 0 or 1
  redis.call('ZADD', KEYS[1], expiry, ARGV[4] .. '|' .. node)
  extend()
  return first
elseif op == 'remove' then
  redis.call('ZREM', KEYS[1], ARGV[4] .. '|' .. node)
  return present(ARGV[4]) and 0 or 1
elseif op == 'refresh' then
  local gone = {}
  for i = 4, #ARGV do
    local member = ARGV[i] .. '|' .. node
    if redis.call('ZSCORE', KEYS[1], member) then
      redis.call('ZADD', KEYS[1], 'XX', expiry, member)
    else
      gone[#gone + 1] = ARGV[i]
    end
  end
  if #gone < #ARGV - 3 then
    extend()
  end
  return gone
end
return redis.error_reply('presence: unknown op ' .. op)
