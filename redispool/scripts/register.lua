-- register.lua: a worker joins with its slots.
-- ARGV[2] worker id, ARGV[3] the worker's record (JSON), ARGV[4] heartbeat TTL in ms, ARGV[5..] slot ids.
-- Starts its heartbeat, registers each slot, serves the waiting line first and pushes the remaining
-- slots onto the idle stack. Returns the number of parked tasks dispatched.
-- Idempotent: a slot already registered is not pushed twice.
local worker = ARGV[2]
redis.call('SET', BASE .. 'hb:' .. worker, '1', 'PX', ARGV[4])
redis.call('HSET', K_WORKERS, worker, ARGV[3])
for i = 5, #ARGV do
  local slot = ARGV[i]
  if redis.call('HSETNX', K_SLOTS, slot, worker) == 1 then
    redis.call('RPUSH', K_IDLE, slot)
  end
end
return serve_waiting()
