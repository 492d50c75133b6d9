-- Publish one message: check the idempotency key, assign the room's next
-- seq, append the frame to history and publish it, atomically.
--
-- KEYS[1] room meta hash (e = epoch, s = seq)
-- KEYS[2] room history stream (entry id <seq>-0, field f = frame)
-- KEYS[3] idempotency key, optional
-- ARGV[1] frame prefix      ARGV[2] frame suffix
-- ARGV[3] candidate epoch, used when the room has no meta (new or expired)
-- ARGV[4] history size      ARGV[5] history TTL, ms
-- ARGV[6] room channel      ARGV[7] idempotency TTL, ms
--
-- Returns {duplicate (0 or 1), envelope}, the envelope being
-- "p" epoch ":" seq ":" frame, as published and as remembered for the key.
if KEYS[3] then
  local env = redis.call('GET', KEYS[3])
  if env then
    return {1, env}
  end
end
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  -- A new life of the room: drop any history left of the previous one.
  redis.call('DEL', KEYS[2])
  epoch = ARGV[3]
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
local seq = string.format('%d', redis.call('HINCRBY', KEYS[1], 's', 1))
local frame = ARGV[1] .. seq .. ARGV[2]
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], seq .. '-0', 'f', frame)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local env = 'p' .. epoch .. ':' .. seq .. ':' .. frame
redis.call('PUBLISH', ARGV[6], env)
if KEYS[3] then
  redis.call('SET', KEYS[3], env, 'PX', ARGV[7])
end
return {0, env}
