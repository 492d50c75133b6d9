-- Send a user event once per idempotency key: publish it unless the key is
-- remembered, and remember the key only when some node received it.
--
-- KEYS[1] idempotency key
-- ARGV[1] user channel   ARGV[2] envelope   ARGV[3] idempotency TTL, ms
-- ARGV[4] the publish command: PUBLISH, or SPUBLISH on a Redis Cluster
--
-- The key is set before publishing (and deleted again when nobody received
-- the event) so that a Redis at maxmemory refuses the script before it
-- publishes anything, rather than after.
--
-- Returns -1 for a duplicate, else the number of receivers.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
local n = redis.call(ARGV[4], ARGV[1], ARGV[2])
if n == 0 then
  redis.call('DEL', KEYS[1])
end
return n
