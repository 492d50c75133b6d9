-- Read a room's moderation (see moderate.lua): the whole hash, or only the
-- freeze and one user's mute and ban, with Redis's clock, by which the
-- caller drops what ended. It writes nothing.
--
-- KEYS[1] room moderation hash
-- ARGV[1] user, '' for all
--
-- Returns {now (unix ms), field, value, field, value, ...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
local fields
if ARGV[1] == '' then
  fields = redis.call('HGETALL', KEYS[1])
else
  local names = {'f', 'm:' .. ARGV[1], 'b:' .. ARGV[1]}
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  fields = {}
  for i = 1, 3 do
    if values[i] then
      fields[#fields + 1] = names[i]
      fields[#fields + 1] = values[i]
    end
  end
end
for i = 1, #fields do
  out[#out + 1] = fields[i]
end
return out
