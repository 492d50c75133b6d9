-- Read a room's position and, optionally, some of its history. Only a read
-- with create set (SubscribeRoom's) gives a room without meta its meta, with
-- the candidate epoch, so that the epoch a member sees before the first
-- publish is the one that publish uses; any other read writes nothing
-- (but for ending a life from another run of Redis: see lifecheck.lua).
--
-- KEYS[1] room meta hash    KEYS[2] room history stream
-- ARGV[1] candidate epoch   ARGV[2] history TTL, ms
-- ARGV[3] mode:
--   "pos"    the position only
--   "since"  entries from stream id ARGV[4] on; none when ARGV[6] is set
--            and is not the room's epoch
--   "resync" as since, but the whole history when the epoch differs
--   "range"  entries from ARGV[4] to ARGV[5]; none when ARGV[6] is set
--            and is not the room's epoch
--   "before" the newest ARGV[5] entries up to stream id ARGV[4], newest
--            first
-- ARGV[6] the epoch the caller knows, or ""
-- ARGV[7] since, before: cap on the summed frame sizes returned, 0 for
--         none. since stops before the first entry that does not fit;
--         before returns the newest that fit, at least one.
-- ARGV[8] "1" to create the meta of a room that has none
--
-- Returns {epoch, seq, entries, truncated}, entries as XRANGE returns them
-- and truncated 1 when since left entries out for the cap.
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
local epoch, seq = meta[1], meta[2]
if not epoch then
  -- No history: a new room, or one whose life ended (its stream, if any
  -- is left, belongs to that life).
  if ARGV[8] == '1' then
    redis.call('DEL', KEYS[2])
    redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', 0, 'b', 0)
    if life_run then
      redis.call('HSET', KEYS[1], 'r', life_run) -- see lifecheck.lua
    end
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
  return {ARGV[1], '0', {}, 0}
end

local mode, known, cap = ARGV[3], ARGV[6], tonumber(ARGV[7])
local other = known ~= '' and known ~= epoch
local chunk = 16

-- collect reads entries with cmd in chunks of up to limit entries while
-- their frames fit in cap, and reports whether one did not.
local function collect(cmd, from, to, limit, atLeastOne)
  local entries, bytes = {}, 0
  while #entries < limit do
    local batch = redis.call(cmd, KEYS[2], from, to, 'COUNT', math.min(chunk, limit - #entries))
    for _, e in ipairs(batch) do
      bytes = bytes + #e[2][2]
      if cap > 0 and bytes > cap and not (atLeastOne and #entries == 0) then
        return entries, 1
      end
      entries[#entries + 1] = e
    end
    if #batch < chunk then
      break
    end
    from = '(' .. batch[#batch][1]
  end
  return entries, 0
end

local entries, truncated = {}, 0
if mode == 'since' and not other then
  entries, truncated = collect('XRANGE', ARGV[4], '+', math.huge, false)
elseif mode == 'resync' then
  entries = redis.call('XRANGE', KEYS[2], other and '-' or ARGV[4], '+')
elseif mode == 'range' and not other then
  entries = redis.call('XRANGE', KEYS[2], ARGV[4], ARGV[5])
elseif mode == 'before' then
  entries = collect('XREVRANGE', ARGV[4], '-', tonumber(ARGV[5]), true)
end
return {epoch, seq, entries, truncated}
