-- Prepended to the scripts that read a room's meta hash (KEYS[1]) and
-- history stream (KEYS[2]) (publish.lua, history.lua, unread.lua) when
-- Redis may lose writes it acknowledged (Config.Durable off): restarted
-- from an RDB snapshot or an appendfsync-everysec AOF, or failed over to a
-- replica that lagged, it comes back with a room's seq behind what members
-- were given, and new messages would reuse those seqs in the same epoch:
-- clients would take them for ones they already have. So the meta hash
-- records, in r, the run of Redis (INFO's run_id) its life began in, and a
-- room found from another run ends its life here (meta and history
-- deleted, as if they had expired): the script goes on as for a room
-- without history, and the next publish starts a new epoch. A room whose
-- meta has no r (written by an earlier version, or with Durable on) is
-- adopted by this run. life_run is this run's id, for the script to record
-- when it creates the meta.
redis.replicate_commands()
local life_run = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
do
  local run = redis.call('HGET', KEYS[1], 'r')
  if run and run ~= life_run then
    redis.call('DEL', KEYS[1], KEYS[2])
  elseif not run and redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'r', life_run)
  end
end
