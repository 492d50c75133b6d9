-- Move a user's read position in a room forward, atomically.
--
-- KEYS[1] the user's read hash: field = room, value = epoch ":" seq ":" ms
--         (ms: when written, to forget the oldest beyond the cap)
-- ARGV[1] room      ARGV[2] epoch     ARGV[3] seq
-- ARGV[4] TTL of the hash, ms (refreshed on every write)
-- ARGV[5] now, ms   ARGV[6] the most rooms kept
--
-- Returns 1 when the position moved: a higher seq in the same epoch, or
-- any seq of another epoch (an old epoch's position means nothing); else 0
-- and nothing is written.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local epoch, seq = string.match(old, '^([^:]*):(%d+):')
  if epoch == ARGV[2] and tonumber(seq) >= tonumber(ARGV[3]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3] .. ':' .. ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if not old and redis.call('HLEN', KEYS[1]) > tonumber(ARGV[6]) then
  -- Forget the room written longest ago: O(cap), only beyond the cap.
  local all = redis.call('HGETALL', KEYS[1])
  local oldest, at = nil, nil
  for i = 1, #all, 2 do
    local ms = tonumber(string.match(all[i + 1], ':(%d+)$'))
    if ms and (not at or ms < at) then
      oldest, at = all[i], ms
    end
  end
  if oldest then
    redis.call('HDEL', KEYS[1], oldest)
  end
end
return 1
