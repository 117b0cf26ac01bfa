-- acquire.lua: GoPool's Submit in one round trip.
-- KEYS[18] the task's result key.
-- ARGV[2] task id, ARGV[3] envelope, ARGV[4] submitter's reply key, ARGV[5] "park" or "try".
-- Returns 1 dispatched (a live slot was popped, running incremented, the attempt counted, the task pushed
--           to the slot's worker), 2 parked (the pool is full or others wait: the task joined the waiting
--           line; a grant frame to the reply key will say when it is dispatched),
--         0 full (mode "try": nothing written).
-- Idempotent: a repeated call for the same task id answers as the first call did and writes nothing.
local id, envelope, reply, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('HEXISTS', K_TASKS, id) == 1 then
  if redis.call('HEXISTS', K_PARKED, id) == 1 then return 2 end
  return 1
end
if redis.call('EXISTS', KEYS[18]) == 1 then return 1 end

if promote_due() > 0 then serve_waiting() end

-- No barging: while anyone is parked, a new task queues behind them even if a slot looks free.
if redis.call('LLEN', K_WAITING) == 0 and running() < capacity() then
  local slot, worker = pop_live_slot()
  if slot then
    redis.call('HSET', K_TASKS, id, envelope)
    dispatch(slot, worker, id)
    redis.call('INCR', K_RUNNING)
    return 1
  end
end

if mode ~= 'park' then return 0 end
redis.call('HSET', K_TASKS, id, envelope)
redis.call('HSET', K_PARKED, id, reply)
redis.call('RPUSH', K_WAITING, id)
return 2
