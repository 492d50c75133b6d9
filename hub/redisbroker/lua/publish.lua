-- Publish one message: check the idempotency key, assign the room's next
-- seq, append the frame to history, trim history and publish, atomically.
--
-- KEYS[1] room meta hash (e = epoch, s = seq, b = bytes of the frames kept)
-- KEYS[2] room history stream (entry id <seq>-0, field f = frame)
-- KEYS[3] room moderation hash (see moderate.lua)
-- KEYS[4] idempotency key, optional
-- ARGV[1] frame prefix      ARGV[2] frame suffix
-- ARGV[3] candidate epoch, used when the room has no meta (new or expired)
-- ARGV[4] history size      ARGV[5] history TTL, ms
-- ARGV[6] room channel      ARGV[7] idempotency TTL, ms
-- ARGV[8] history byte cap
-- ARGV[9] the publish command: PUBLISH, or SPUBLISH on a Redis Cluster
-- ARGV[10] the member whose own write this is, '' for the server API or an
-- operator (see hub.PublishRequest.Member)
-- ARGV[11..13], for an edit or delete only (see hub.Target): the target seq,
-- the author it must have ('' for any), '1' for a delete
--
-- The meta hash's field x lists the seqs of history's messages a delete
-- targeted, as ",3,7,"; it lives and dies with the room's epoch, and only
-- seqs still in history are kept, so it never outgrows history.
--
-- Returns {duplicate (0 or 1), epoch, seq}, or {-1, code, until} when the
-- member is banned or muted or the room frozen (code banned, muted or
-- frozen, checked in that order; until, of a ban or mute, in unix ms, 0 for
-- until lifted), or an edit's or delete's target
-- is refused (code not_found or forbidden). What is published is the
-- envelope "p" epoch ":" seq ":" frame; the idempotency key keeps only
-- epoch ":" seq, all a duplicate needs.
if KEYS[4] then
  local first = redis.call('GET', KEYS[4])
  if first then
    local epoch, seq = string.match(first, '^(.*):(%d+)$')
    return {1, epoch, seq}
  end
end
if ARGV[10] ~= '' then
  local mod = redis.call('HMGET', KEYS[3], 'f', 'b:' .. ARGV[10], 'm:' .. ARGV[10])
  if mod[2] or mod[3] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    for i, code in ipairs({'', 'banned', 'muted'}) do
      local untilMs = mod[i] and i > 1 and tonumber(string.match(mod[i], '^(%d+)'))
      if untilMs and (untilMs == 0 or untilMs > now) then
        return {-1, code, untilMs}
      end
    end
  end
  if mod[1] then
    return {-1, 'frozen', 0}
  end
end
local target = ARGV[11]
if target then
  -- The target must be a message (a frame of protocol.NewMessage, whose
  -- sender protocol.MessageSender reads alike) of this epoch's history.
  local hit = redis.call('HGET', KEYS[1], 'e') and redis.call('XRANGE', KEYS[2], target .. '-0', target .. '-0')[1]
  local from = hit and string.match(hit[2][2], '^{"type":"message","room":"[^"]*","seq":%d+,"from":"([^"]*)"')
  local deleted = redis.call('HGET', KEYS[1], 'x') or ','
  if not from or string.find(deleted, ',' .. target .. ',', 1, true) then
    return {-1, 'not_found', 0}
  end
  if ARGV[12] ~= '' and from ~= ARGV[12] then
    return {-1, 'forbidden', 0}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  -- A new life of the room: drop any history left of the previous one.
  redis.call('DEL', KEYS[2])
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0, 'b', 0)
  if life_run then
    redis.call('HSET', KEYS[1], 'r', life_run) -- see lifecheck.lua
  end
end
local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 's', 1))
local frame = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], seq .. '-0', 'f', frame)

-- Trim the oldest entries beyond the size or the byte cap, always keeping
-- the newest. Each entry is added once and trimmed once: O(1) amortized.
local size, cap = tonumber(ARGV[4]), tonumber(ARGV[8])
local bytes = redis.call('HINCRBY', KEYS[1], 'b', #frame)
local n = redis.call('XLEN', KEYS[2])
local cursor = nil
while n > 1 and (n > size or bytes > cap) do
  local oldest = redis.call('XRANGE', KEYS[2], cursor or '-', '+', 'COUNT', 1)[1]
  bytes = bytes - #oldest[2][2]
  n = n - 1
  cursor = '(' .. oldest[1]
end
if cursor then
  local first = redis.call('XRANGE', KEYS[2], cursor, '+', 'COUNT', 1)[1]
  redis.call('XTRIM', KEYS[2], 'MINID', first[1])
  redis.call('HSET', KEYS[1], 'b', math.max(bytes, 0))
end

if target and ARGV[13] == '1' then
  local oldest = tonumber(string.match(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1][1], '^%d+'))
  local kept = ','
  for s in string.gmatch(redis.call('HGET', KEYS[1], 'x') or '', '%d+') do
    if tonumber(s) >= oldest then
      kept = kept .. s .. ','
    end
  end
  redis.call('HSET', KEYS[1], 'x', kept .. target .. ',')
end

redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
redis.call(ARGV[9], ARGV[6], 'p' .. epoch .. ':' .. seq .. ':' .. frame)
if KEYS[4] then
  redis.call('SET', KEYS[4], epoch .. ':' .. seq, 'PX', ARGV[7])
end
return {0, epoch, seq}
