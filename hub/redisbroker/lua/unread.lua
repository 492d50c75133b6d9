-- Count a user's unread messages in a room: the messages of other users
-- in history after the user's read position, up to a seq.
--
-- KEYS[1] room meta hash    KEYS[2] room history stream
-- ARGV[1] user              ARGV[2] epoch of the read position ("" none)
-- ARGV[3] seq of the read position
-- ARGV[4] count up to this seq; 0 for the newest
--
-- Returns {epoch, seq, read seq, count, capped}: the room's position (seq
-- lowered to ARGV[4]), the read position in that epoch (0 when it is of
-- another), the count, and capped 1 when history no longer reaches back to
-- the read position. Only message frames count, recognized by their head
-- as protocol.MessageSender reads it: entries of other types do not.
local meta = redis.call('HMGET', KEYS[1], 'e', 's')
local epoch, seq = meta[1], tonumber(meta[2])
if not epoch then
  return {'', 0, 0, 0, 0}
end
local upto = tonumber(ARGV[4])
if upto == 0 or upto > seq then
  upto = seq
end
local read = 0
if ARGV[2] == epoch then
  read = math.min(tonumber(ARGV[3]), upto)
end
if read >= upto then
  return {epoch, upto, read, 0, 0}
end
local entries = redis.call('XRANGE', KEYS[2], string.format('%d', read + 1), string.format('%d', upto))
local capped = 0
if #entries == 0 or tonumber(string.match(entries[1][1], '^(%d+)')) > read + 1 then
  capped = 1
end
local count = 0
for _, e in ipairs(entries) do
  local from = string.match(e[2][2], '^{"type":"message","room":"[^"]*","seq":%d+,"from":"([^"]*)"')
  if from and from ~= ARGV[1] then
    count = count + 1
  end
end
return {epoch, upto, read, count, capped}
