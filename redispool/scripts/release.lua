-- release.lua: a task ended on a slot; GoPool's worker pushing itself back and signalling the condition.
-- KEYS[11] the task's result key, KEYS[12] the submitter's reply key.
-- ARGV[2] slot id, ARGV[3] task id, ARGV[4] result frame, ARGV[5] result TTL in ms.
-- Records the outcome (result key, kept ARGV[5] ms) and delivers it to the reply key, then either hands
-- the slot straight to the oldest parked task (running unchanged) or pushes it back and decrements running.
-- A slot whose worker deregistered (draining) retires instead: it never returns to the stack.
-- Returns {0} stale (the slot's lease is not this task: nothing written),
--         {1} slot returned or retired, {2, envelope} the slot now runs this parked task: run it next.
-- Idempotent: a repeated call is stale, except that a repeated call whose first run handed the slot on
-- answers {2, envelope} again, so a lost reply cannot orphan the handed-off task.
local slot, id, frame, ttl_ms = ARGV[2], ARGV[3], ARGV[4], ARGV[5]

if redis.call('HGET', K_LEASES, slot) ~= id then
  if redis.call('HGET', K_HANDOFF, slot) == id then
    local next_id = redis.call('HGET', K_LEASES, slot)
    if next_id then return {2, redis.call('HGET', K_TASKS, next_id)} end
  end
  return {0}
end

redis.call('HDEL', K_LEASES, slot)
redis.call('HDEL', K_OWNER, id)
redis.call('HDEL', K_TASKS, id)
redis.call('HDEL', K_HANDOFF, slot)
redis.call('DEL', KEYS[11])
redis.call('RPUSH', KEYS[11], frame)
redis.call('PEXPIRE', KEYS[11], ttl_ms)
redis.call('RPUSH', KEYS[12], frame)
redis.call('PEXPIRE', KEYS[12], ttl_ms)

if redis.call('HEXISTS', K_SLOTS, slot) == 0 then
  redis.call('DECR', K_RUNNING)
  return {1}
end

if running() <= capacity() then
  local next_id = unpark()
  if next_id then
    lease(slot, next_id)
    redis.call('HSET', K_HANDOFF, slot, id)
    return {2, redis.call('HGET', K_TASKS, next_id)}
  end
end

redis.call('RPUSH', K_IDLE, slot)
redis.call('DECR', K_RUNNING)
return {1}
