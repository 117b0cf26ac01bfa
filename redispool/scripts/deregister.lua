-- deregister.lua: a worker leaves (graceful shutdown). Its slots are unregistered and taken off the
-- idle stack at once; busy slots retire when their task is released (release.lua), so none of them
-- ever returns to the stack or serves the waiting line. Its heartbeat goes on until it exits, so the
-- reaper leaves its running tasks alone.
-- ARGV[2] worker id, ARGV[3..] its slot ids.
-- Returns the number of its slots still running a task. Idempotent.
redis.call('HDEL', K_WORKERS, ARGV[2])
local busy = 0
for i = 3, #ARGV do
  local slot = ARGV[i]
  redis.call('HDEL', K_SLOTS, slot)
  redis.call('LREM', K_IDLE, 0, slot)
  if redis.call('HEXISTS', K_LEASES, slot) == 1 then busy = busy + 1 end
end
return busy
