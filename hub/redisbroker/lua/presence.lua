-- Presence of users in a room, and its member events. Per room a sorted set
-- of entries, member user "|" node "|" generation, score the entry's expiry
-- in Redis server time (ms); and a hash counting each user's live entries.
-- Every change that makes a user present or absent on all nodes publishes
-- member_joined or member_left on the room's channel, within the same
-- script, so every node sees a room's member events in the order of its
-- presence changes. Expired entries (a crashed node's) are reaped by the
-- first script that runs for the room, which announces them once.
--
-- KEYS[1] the room's entries (sorted set)   KEYS[2] live entries per user (hash)
-- KEYS[3] the boot key, whose value changes when Redis loses its data
-- ARGV[1] op: "add", "remove", "refresh" or "members"
-- ARGV[2] TTL, ms   ARGV[3] room name   ARGV[4] room channel
-- ARGV[5] the boot id the caller registered under; "" skips the check
-- ARGV[6...] entries (add, remove, refresh: user "|" node "|" generation)
-- ARGV[7] remove only: "1" announces member_left whenever the user has no
--         live entry left (a retried removal), else only when this removal
--         took the last one
--
-- add returns 1 when the user had no live entry before; remove returns 1
-- when the user has none left; refresh returns the entries that were gone
-- (it does not add them back); members returns the users with a live entry.
-- A boot id that does not match fails with LOST: the caller re-registers.
-- add, remove and refresh are O(log N) in the room's entries (plus the
-- expired ones reaped).
redis.replicate_commands()
local op, ttl, room, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
  return redis.error_reply('LOST presence lost: Redis restarted or was flushed')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function user_of(entry)
  return string.sub(entry, 1, string.find(entry, '|', 1, true) - 1)
end

-- announce publishes a member event as an event envelope (see envelope.go)
-- excluding the user's own sessions. Names never need JSON escaping.
local function announce(typ, user)
  local frame = '{"type":"' .. typ .. '","room":"' .. room .. '","user":"' .. user .. '"}'
  redis.call('PUBLISH', channel, 'e0:' .. #user .. ':' .. user .. frame)
end

-- drop removes one counted entry of user and reports whether none is left.
local function drop(user)
  if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    return true
  end
  return false
end

-- reap removes the expired entries, announcing the users they leave absent.
local function reap()
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, entry in ipairs(expired) do
    redis.call('ZREM', KEYS[1], entry)
    local user = user_of(entry)
    if drop(user) then
      announce('member_left', user)
    end
  end
end

-- extend keeps both keys at least as long as their newest entry.
local function extend()
  for _, key in ipairs({KEYS[1], KEYS[2]}) do
    if redis.call('PTTL', key) < ttl then
      redis.call('PEXPIRE', key, ttl)
    end
  end
end

reap()
local expiry = string.format('%d', now + ttl)
if op == 'members' then
  return redis.call('HKEYS', KEYS[2])
elseif op == 'add' then
  local entry, user = ARGV[6], user_of(ARGV[6])
  local first = 0
  if redis.call('ZADD', KEYS[1], expiry, entry) == 1 then
    if redis.call('HINCRBY', KEYS[2], user, 1) == 1 then
      first = 1
      announce('member_joined', user)
    end
  end
  extend()
  return first
elseif op == 'remove' then
  local entry, user = ARGV[6], user_of(ARGV[6])
  local last = false
  if redis.call('ZREM', KEYS[1], entry) == 1 then
    last = drop(user)
    if last then
      announce('member_left', user)
    end
  elseif ARGV[7] == '1' and not redis.call('HGET', KEYS[2], user) then
    last = true
    announce('member_left', user)
  end
  return last and 1 or 0
elseif op == 'refresh' then
  local gone = {}
  for i = 6, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
    else
      gone[#gone + 1] = ARGV[i]
    end
  end
  if #gone < #ARGV - 5 then
    extend()
  end
  return gone
end
return redis.error_reply('presence: unknown op ' .. op)
