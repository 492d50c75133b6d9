-- Presence of users in a room, and its member events. Per room a sorted set
-- of entries, member user "|" node "|" generation, score the entry's expiry
-- in Redis server time (ms); a hash counting each user's live entries; and
-- a sorted set of the users with a live entry, all scored 0, which
-- ZRANGEBYLEX pages in name order. Every change that makes a user present
-- or absent on all nodes publishes member_joined or member_left on the
-- room's channel, within the same script, so every node sees a room's
-- member events in the order of its presence changes, unless the room has
-- more than ARGV[6] members both before and after the change (large rooms
-- are not told of each member; see protocol.Announced). Expired entries (a
-- crashed node's) are reaped by the first script that runs for the room,
-- which announces them once, and returns the users they left absent, so
-- that the node that ran it, and only that one, reports them (webhooks).
--
-- KEYS[1] the room's entries (sorted set)   KEYS[2] live entries per user (hash)
-- KEYS[3] the boot key, whose value changes when Redis loses its data
-- KEYS[4] the room's users (sorted set, scores 0)
-- ARGV[1] op: "add", "remove", "refresh", "members" or "reap"
-- ARGV[2] TTL, ms   ARGV[3] room name   ARGV[4] room channel
-- ARGV[5] the boot id the caller registered under; "" skips the check
-- ARGV[6] the most members a room may have for its changes to be announced
-- ARGV[7] the publish command: PUBLISH, or SPUBLISH on a Redis Cluster
-- ARGV[8...] entries (add, remove, refresh: user "|" node "|" generation);
--         members: ARGV[8] the user to page after ("" from the first),
--         ARGV[9] the page size; reap: none
-- ARGV[9] remove only: "1" announces member_left whenever the user has no
--         live entry left (a retried removal), else only when this removal
--         took the last one; a user the reap just left absent is announced
--         (and returned in left) once, by the reap
--
-- Every op returns {result, left}: left lists the users the reap of
-- expired entries left with no live entry (each once; the op may add one
-- back). result: add 1 when the user had no live entry before; remove 1
-- when the user has none left; refresh the entries that were gone (it
-- does not add them back); members the room's member count, 1 when more
-- users follow the page (else 0), then the page's users; reap 0.
-- A boot id that does not match fails with LOST: the caller re-registers.
-- add, remove, refresh, members and reap are O(log N) in the room's
-- entries (plus the expired ones reaped, the page, and, once, rebuilding
-- the users set when it does not match the hash: written by an older
-- version).
redis.replicate_commands()
local op, ttl, room, channel = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local announce_max, publish = tonumber(ARGV[6]), ARGV[7]
local ops = {add = true, remove = true, refresh = true, members = true, reap = true}
if not ops[op] then
  return redis.error_reply('presence: unknown op ' .. op)
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
  return redis.error_reply('LOST presence lost: Redis restarted or was flushed')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function user_of(entry)
  return string.sub(entry, 1, string.find(entry, '|', 1, true) - 1)
end

-- announce publishes a member event, with the room's member count after
-- the change, as an event envelope (see envelope.go) excluding the user's
-- own sessions; nothing when the room is too large before and after the
-- change. Names never need JSON escaping.
local function announce(typ, user)
  local count = redis.call('HLEN', KEYS[2])
  local limit = announce_max
  if typ == 'member_joined' then
    limit = limit + 1
  end
  if count > limit then
    return
  end
  local frame = '{"type":"' .. typ .. '","room":"' .. room .. '","user":"' .. user ..
    '","member_count":' .. count .. '}'
  redis.call(publish, channel, 'e0:' .. #user .. ':' .. user .. frame)
end

-- drop removes one counted entry of user and reports whether none is left.
local function drop(user)
  if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('ZREM', KEYS[4], user)
    return true
  end
  return false
end

-- reap removes the expired entries, announcing the users they leave
-- absent, and returns those users; reaped has them as keys.
local reaped = {}
local function reap()
  local left = {}
  local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, entry in ipairs(expired) do
    redis.call('ZREM', KEYS[1], entry)
    local user = user_of(entry)
    if drop(user) then
      announce('member_left', user)
      left[#left + 1] = user
      reaped[user] = true
    end
  end
  return left
end

-- extend keeps the keys 3 TTLs beyond their newest entry's refresh: an
-- entry outlives its expiry there until a reap, the sweep of a gone node's
-- rooms included, finds it and reports its user (see sweep.go).
local function extend()
  local keep = 3 * ttl
  for _, key in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do
    if redis.call('PTTL', key) < keep then
      redis.call('PEXPIRE', key, keep)
    end
  end
end

-- members returns a page of the users after ARGV[8], with the count and
-- whether more follow. A users set that does not match the hash (written
-- by a version without it) is rebuilt from the hash first.
local function members()
  local count = redis.call('HLEN', KEYS[2])
  if redis.call('ZCARD', KEYS[4]) ~= count then
    redis.call('DEL', KEYS[4])
    for _, user in ipairs(redis.call('HKEYS', KEYS[2])) do
      redis.call('ZADD', KEYS[4], 0, user)
    end
    if count > 0 then
      redis.call('PEXPIRE', KEYS[4], math.max(redis.call('PTTL', KEYS[2]), 3 * ttl))
    end
  end
  local from, limit = '-', tonumber(ARGV[9])
  if ARGV[8] ~= '' then
    from = '(' .. ARGV[8]
  end
  local page = redis.call('ZRANGEBYLEX', KEYS[4], from, '+', 'LIMIT', 0, limit + 1)
  local more = 0
  if #page > limit then
    more = 1
    page[#page] = nil
  end
  local out = {count, more}
  for i = 1, #page do
    out[i + 2] = page[i]
  end
  return out
end

local left = reap()
local expiry = string.format('%d', now + ttl)
if op == 'members' then
  return {members(), left}
elseif op == 'reap' then
  return {0, left}
elseif op == 'add' then
  local entry, user = ARGV[8], user_of(ARGV[8])
  local first = 0
  if redis.call('ZADD', KEYS[1], expiry, entry) == 1 then
    if redis.call('HINCRBY', KEYS[2], user, 1) == 1 then
      first = 1
      redis.call('ZADD', KEYS[4], 0, user)
      announce('member_joined', user)
    end
  end
  extend()
  return {first, left}
elseif op == 'remove' then
  local entry, user = ARGV[8], user_of(ARGV[8])
  local last = false
  if redis.call('ZREM', KEYS[1], entry) == 1 then
    last = drop(user)
    if last then
      announce('member_left', user)
    end
  elseif ARGV[9] == '1' and not reaped[user] and not redis.call('HGET', KEYS[2], user) then
    last = true
    announce('member_left', user)
  end
  return {last and 1 or 0, left}
elseif op == 'refresh' then
  local gone = {}
  for i = 8, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
    else
      gone[#gone + 1] = ARGV[i]
    end
  end
  if #gone < #ARGV - 7 then
    extend()
  end
  return {gone, left}
end
