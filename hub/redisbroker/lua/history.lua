-- Read a room's position and, optionally, a range of its history. A room
-- without meta gets one now, with the candidate epoch, so that the epoch
-- returned before the first publish is the one that publish uses.
--
-- KEYS[1] room meta hash    KEYS[2] room history stream
-- ARGV[1] candidate epoch   ARGV[2] history TTL, ms
-- ARGV[3] mode: "pos" (position only), "since", "range" or "before"
-- ARGV[4] since, range: first stream id to return; before: last one
-- ARGV[5] range: last stream id to return; before: how many, newest first
-- ARGV[6] since, range: the epoch the caller knows, or "". When the room's
--         epoch differs, since returns the whole history, range nothing.
--
-- Returns {epoch, seq, entries}, entries as XRANGE returns them.
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
local epoch, seq = meta[1], meta[2]
if not epoch then
  redis.call('DEL', KEYS[2])
  epoch, seq = ARGV[1], '0'
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local entries = {}
if ARGV[3] == 'since' then
  local from = ARGV[4]
  if ARGV[6] ~= '' and ARGV[6] ~= epoch then
    from = '-'
  end
  entries = redis.call('XRANGE', KEYS[2], from, '+')
elseif ARGV[3] == 'range' then
  if ARGV[6] == '' or ARGV[6] == epoch then
    entries = redis.call('XRANGE', KEYS[2], ARGV[4], ARGV[5])
  end
elseif ARGV[3] == 'before' then
  entries = redis.call('XREVRANGE', KEYS[2], ARGV[4], '-', 'COUNT', ARGV[5])
end
return {epoch, seq, entries}
