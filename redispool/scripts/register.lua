-- register.lua: a worker joins with its slots.
-- ARGV[2] worker id, ARGV[3] the worker's record (opaque), ARGV[4..] its slot ids.
-- KEYS[11] the workers hash (worker id -> record).
-- Registers each slot, serves the waiting line first, and pushes the remaining slots onto the idle stack.
-- Returns the number of parked tasks dispatched. Idempotent: a slot already registered is not pushed twice.
local worker = ARGV[2]
redis.call('HSET', KEYS[11], worker, ARGV[3])
for i = 4, #ARGV do
  local slot = ARGV[i]
  if redis.call('HSETNX', K_SLOTS, slot, worker) == 1 then
    redis.call('RPUSH', K_IDLE, slot)
  end
end
return serve_waiting()
