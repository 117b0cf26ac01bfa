-- requeue_dead.lua: send a dead-lettered task back to the pool as a new submission.
-- KEYS[18] the task's result key (cleared, so the new outcome replaces the old one).
-- ARGV[2] task id, ARGV[3] its envelope, re-addressed by the caller to the caller's reply key.
-- Returns 1 requeued, 0 no such dead letter. Idempotent.
local id, envelope = ARGV[2], ARGV[3]
if redis.call('HEXISTS', K_DEADINFO, id) == 0 then return 0 end
redis.call('ZREM', K_DEAD, id)
redis.call('HDEL', K_DEADINFO, id)
redis.call('HDEL', K_DEADENV, id)
redis.call('DEL', KEYS[18])
finish(id)
redis.call('HSET', K_TASKS, id, envelope)
local _, reply = envelope_header(envelope)
redis.call('RPUSH', K_WAITING, id)
redis.call('HSET', K_PARKED, id, reply or '')
serve_waiting()
return 1
