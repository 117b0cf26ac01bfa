-- abandon.lua: a worker stops at once (a second SIGTERM): its running tasks are re-queued at the front
-- now, as the reaper would after its heartbeat expired, without counting a loss against them.
-- ARGV[2] worker id, ARGV[3..] its slot ids.
-- Returns the number of tasks re-queued. Idempotent.
local worker = ARGV[2]
local requeued = 0
for i = 3, #ARGV do
  local slot = ARGV[i]
  redis.call('HDEL', K_SLOTS, slot)
  redis.call('LREM', K_IDLE, 0, slot)
  local value = redis.call('HGET', K_LEASES, slot)
  if value then
    local id = split_lease(value)
    free_lease(slot, id)
    redis.call('DECR', K_RUNNING)
    local envelope = redis.call('HGET', K_TASKS, id)
    if envelope then
      local _, reply = envelope_header(envelope)
      requeue_front(id, reply)
      requeued = requeued + 1
    end
  end
end
redis.call('HDEL', K_WORKERS, worker)
redis.call('DEL', BASE .. 'hb:' .. worker, BASE .. 'inbox:' .. worker)
serve_waiting()
return requeued
