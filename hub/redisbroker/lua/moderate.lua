-- Apply one moderation change to a room and publish its event, atomically.
--
-- KEYS[1] room moderation hash: field f = '1' while the room is frozen,
--         m:<user> = until of a mute, b:<user> = until ':' reason of a ban;
--         until is in unix ms (Redis's clock), 0 for until lifted
-- ARGV[1] action: mute, unmute, ban, unban, freeze or unfreeze
-- ARGV[2] user      ARGV[3] until      ARGV[4] reason
-- ARGV[5] room channel   ARGV[6] event envelope, '' for none
-- ARGV[7] the publish command: PUBLISH, or SPUBLISH on a Redis Cluster
-- ARGV[8] the most mutes and bans the room may hold
--
-- Ended mutes and bans are dropped first. The hash expires (PEXPIREAT) when
-- its last timed entry ends, and lives on while it holds one without end
-- or the room is frozen: expiry is Redis's.
--
-- Returns 'ok', or 'full' when a new mute or ban would exceed ARGV[8].
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local count = 0
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  if field ~= 'f' then
    local untilMs = tonumber(string.match(value, '^(%d+)'))
    if untilMs ~= 0 and untilMs <= now then
      redis.call('HDEL', KEYS[1], field)
    else
      count = count + 1
    end
  end
end

local action, user = ARGV[1], ARGV[2]
local function put(field, value)
  if redis.call('HEXISTS', KEYS[1], field) == 0 and count >= tonumber(ARGV[8]) then
    return false
  end
  redis.call('HSET', KEYS[1], field, value)
  return true
end
local ok = true
if action == 'mute' then
  ok = put('m:' .. user, ARGV[3])
elseif action == 'ban' then
  ok = put('b:' .. user, ARGV[3] .. ':' .. ARGV[4])
elseif action == 'unmute' then
  redis.call('HDEL', KEYS[1], 'm:' .. user)
elseif action == 'unban' then
  redis.call('HDEL', KEYS[1], 'b:' .. user)
elseif action == 'freeze' then
  redis.call('HSET', KEYS[1], 'f', '1')
elseif action == 'unfreeze' then
  redis.call('HDEL', KEYS[1], 'f')
end
if not ok then
  return 'full'
end

-- The hash's expiry: the latest end of its entries, none if one has no end.
local last, forever = 0, false
all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] == 'f' then
    forever = true
  else
    local untilMs = tonumber(string.match(all[i + 1], '^(%d+)'))
    if untilMs == 0 then
      forever = true
    elseif untilMs > last then
      last = untilMs
    end
  end
end
if forever then
  redis.call('PERSIST', KEYS[1])
elseif last > 0 then
  redis.call('PEXPIREAT', KEYS[1], last)
end

if ARGV[6] ~= '' then
  redis.call(ARGV[7], ARGV[5], ARGV[6])
end
return 'ok'
