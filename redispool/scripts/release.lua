-- release.lua: a task's run ended on a slot; GoPool's worker pushing itself back and signalling.
-- KEYS[18] the task's result key, KEYS[19] the submitter's reply key.
-- ARGV[2] slot id, ARGV[3] task id, ARGV[4] attempt (the fencing token), ARGV[5] mode:
--   "done"  record the outcome frame ARGV[6] (result key, kept ARGV[7] ms) and push it to the reply key;
--   "dead"  the same, and dead-letter the task with error text ARGV[9] (bad message, unknown task),
--           keeping the first ARGV[10] bytes of its envelope (0: all);
--   "retry" keep the task and re-queue it after ARGV[8] ms of backoff, counting a retry;
--   "lost"  the run was lost with its child process: re-queue or fail it as a dead worker's task.
-- Then either hand the slot straight to the oldest parked task (running unchanged) or push it back and
-- decrement running. A slot whose worker deregistered (draining) or was reaped retires instead.
-- Returns {0} stale (the slot's lease is not this attempt: nothing written, e.g. a reaped worker that
--             came back from a pause), {1} slot returned or retired,
--         {2, dispatch frame} the slot now runs this parked task: run it next.
-- Idempotent: a repeated call is stale, except that a repeated call whose first run handed the slot on
-- answers {2, frame} again, so a lost reply cannot orphan the handed-off task.
local slot, id, attempt, mode = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local frame, ttl_ms, delay_ms = ARGV[6], ARGV[7], tonumber(ARGV[8]) or 0
local token = id .. ':' .. attempt

if redis.call('HGET', K_LEASES, slot) ~= token then
  if redis.call('HGET', K_HANDOFF, slot) == token then
    local current = redis.call('HGET', K_LEASES, slot)
    if current then
      local next_id, next_attempt = split_lease(current)
      return {2, frame_for(slot, next_id, next_attempt)}
    end
  end
  return {0}
end

free_lease(slot, id)
if mode == 'retry' then
  redis.call('HINCRBY', K_COUNTS, id .. ':r', 1)
  redis.call('ZADD', K_DELAYED, now_ms() + delay_ms, id)
elseif mode == 'lost' then
  lose(id, attempt, ttl_ms, 'the process running the task died')
else
  deliver(KEYS[18], KEYS[19], frame, ttl_ms)
  if mode == 'dead' then
    local envelope = redis.call('HGET', K_TASKS, id) or ''
    local _, _, task = envelope_header(envelope)
    local keep = tonumber(ARGV[10]) or 0
    if keep > 0 then envelope = string.sub(envelope, 1, keep) end
    dead_letter(id, envelope, task or '?', ARGV[9] or '', attempt)
  end
  finish(id)
end
promote_due()

if redis.call('HEXISTS', K_SLOTS, slot) == 0 then
  redis.call('DECR', K_RUNNING)
  serve_waiting()
  return {1}
end

if running() <= capacity() then
  local next_id = unpark()
  while next_id and redis.call('HEXISTS', K_TASKS, next_id) == 0 do next_id = unpark() end
  if next_id then
    local next_frame = lease(slot, next_id)
    redis.call('HSET', K_HANDOFF, slot, token)
    return {2, next_frame}
  end
end

redis.call('RPUSH', K_IDLE, slot)
redis.call('DECR', K_RUNNING)
return {1}
