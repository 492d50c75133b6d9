-- The webhook backlog: a stream of events (KEYS[1]) read by a consumer
-- group, one consumer per node, and the summed size of their bodies
-- (KEYS[2], a string). Delivered or given-up entries are acknowledged and
-- deleted, so the stream's length is the number of events not yet done,
-- which the bounds cap. Both keys are in one slot on a cluster ({webhooks}).
--
-- ARGV[1] op: "add", "hold" or "done"
-- add:  ARGV[2] the most events, ARGV[3] the most bytes, then per event
--       4 values: id, type, ts (unix ms), body. Returns how many events
--       did not fit and were refused.
-- hold: ARGV[2] the group, ARGV[3] the consumer, ARGV[4...] entry ids:
--       resets the idle time of those still pending for the consumer (so
--       that no other node claims them) and returns the others' ids.
-- done: ARGV[2] the group, ARGV[3] the entry id, ARGV[4] its body's size:
--       acknowledges and deletes it. Returns 1 when it was still there.
local op = ARGV[1]
if op == 'add' then
  local max, max_bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
  local n = redis.call('XLEN', KEYS[1])
  local bytes = tonumber(redis.call('GET', KEYS[2]) or '0')
  local refused = 0
  for i = 4, #ARGV, 4 do
    local size = #ARGV[i + 3]
    if n >= max or bytes + size > max_bytes then
      refused = refused + 1
    else
      redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'type', ARGV[i + 1], 'ts', ARGV[i + 2], 'body', ARGV[i + 3])
      n, bytes = n + 1, bytes + size
    end
  end
  redis.call('SET', KEYS[2], bytes)
  return refused
elseif op == 'hold' then
  local lost = {}
  for i = 4, #ARGV do
    local p = redis.call('XPENDING', KEYS[1], ARGV[2], ARGV[i], ARGV[i], 1)
    if p[1] and p[1][2] == ARGV[3] then
      redis.call('XCLAIM', KEYS[1], ARGV[2], ARGV[3], 0, ARGV[i], 'JUSTID')
    else
      lost[#lost + 1] = ARGV[i]
    end
  end
  return lost
elseif op == 'done' then
  redis.call('XACK', KEYS[1], ARGV[2], ARGV[3])
  if redis.call('XDEL', KEYS[1], ARGV[3]) == 0 then
    return 0
  end
  if redis.call('DECRBY', KEYS[2], ARGV[4]) < 0 then
    redis.call('SET', KEYS[2], 0)
  end
  return 1
end
return redis.error_reply('webhook: unknown op ' .. op)
