-- _lib.lua: prepended to every script (see backend.py). Names the pool's shared keys and the moves
-- that several scripts make. Every script receives:
--   KEYS[1..17] the shared keys, in keys.SHARED_KEYS order; script-specific keys start at KEYS[18].
--   ARGV[1]     the pool's tagged key base, e.g. "rp:{default}:". Per-worker keys (inbox, heartbeat) and
--               per-task result keys written by the reaper are derived from it in the script (a slot's
--               worker is only known once the slot is popped); they carry the same hash tag, so every key
--               a script touches lives in the pool's one Cluster slot.
-- Times come from the Redis clock (TIME), never from a host's clock.
local K_IDLE, K_RUNNING, K_CAPACITY, K_SLOTS, K_WAITING = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_TASKS, K_LEASES, K_OWNER, K_PARKED, K_HANDOFF = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local K_WORKERS, K_REGISTRY, K_COUNTS, K_DELAYED = KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local K_DEAD, K_DEADINFO, K_DEADENV = KEYS[15], KEYS[16], KEYS[17]
local BASE = ARGV[1]
local MAX_DEAD = 10000  -- dead letters kept; the oldest are dropped beyond this

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The cluster-wide cap: the capacity key, or the number of registered slots when it is unset.
local function capacity()
  local cap = redis.call('GET', K_CAPACITY)
  if cap then return tonumber(cap) end
  return redis.call('HLEN', K_SLOTS)
end

local function running()
  return tonumber(redis.call('GET', K_RUNNING) or '0')
end

local function alive(worker)
  return redis.call('EXISTS', BASE .. 'hb:' .. worker) == 1
end

-- Slot ids are "<worker id>.<n>".
local function worker_of(slot)
  return string.match(slot, '^(.*)%.%d+$')
end

-- An envelope's header: task id, reply key, task name, per-call options JSON.
local function envelope_header(envelope)
  return string.match(envelope, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|')
end

-- A lease value is "<task id>:<attempt>": the fencing token a release must present.
local function split_lease(value)
  return string.match(value, '^(.*):(%d+)$')
end

-- Pop the most recently idled slot whose worker is registered and alive (LIFO, as GoPool's stack).
-- Slots of workers that left or stopped heartbeating are dropped on the way: no task is sent to them.
local function pop_live_slot()
  while true do
    local slot = redis.call('RPOP', K_IDLE)
    if not slot then return nil, nil end
    local worker = redis.call('HGET', K_SLOTS, slot)
    if worker then
      if alive(worker) then return slot, worker end
      redis.call('HDEL', K_SLOTS, slot)
    end
  end
end

-- The dispatch frame for the task a slot's lease names: "<slot>|<attempt>|<retries done>|<envelope>".
-- `fresh_envelope` is given for a task just submitted: no retries yet, and no need to read back the
-- envelope the caller has just stored.
local function frame_for(slot, id, attempt, fresh_envelope)
  if fresh_envelope then return slot .. '|' .. attempt .. '|0|' .. fresh_envelope end
  local retried = redis.call('HGET', K_COUNTS, id .. ':r') or '0'
  return slot .. '|' .. attempt .. '|' .. retried .. '|' .. redis.call('HGET', K_TASKS, id)
end

-- Lease `slot` to task `id`, counting the attempt before it runs; returns the dispatch frame.
local function lease(slot, id, fresh_envelope)
  local attempt = redis.call('HINCRBY', K_COUNTS, id .. ':a', 1)
  redis.call('HSET', K_LEASES, slot, id .. ':' .. attempt)
  redis.call('HSET', K_OWNER, id, slot)
  return frame_for(slot, id, attempt, fresh_envelope)
end

local function free_lease(slot, id)
  redis.call('HDEL', K_LEASES, slot)
  redis.call('HDEL', K_OWNER, id)
  redis.call('HDEL', K_HANDOFF, slot)
end

-- Lease the slot and push the frame to its worker's inbox. (An idle slot has no handoff entry: every
-- release clears it in free_lease.)
local function dispatch(slot, worker, id, fresh_envelope)
  redis.call('RPUSH', BASE .. 'inbox:' .. worker, lease(slot, id, fresh_envelope))
end

-- Forget a task that reached its outcome.
local function finish(id)
  redis.call('HDEL', K_TASKS, id)
  redis.call('HDEL', K_COUNTS, id .. ':a', id .. ':l', id .. ':r')
end

-- Keep an outcome frame at the task's result key (for ttl_ms) and push it to the submitter's reply list.
local function deliver(result_key, reply, frame, ttl_ms)
  redis.call('DEL', result_key)
  redis.call('RPUSH', result_key, frame)
  redis.call('PEXPIRE', result_key, ttl_ms)
  if reply and reply ~= '' then
    redis.call('RPUSH', reply, frame)
    redis.call('PEXPIRE', reply, ttl_ms)
  end
end

-- Set a task aside for inspection and requeue; the oldest beyond MAX_DEAD are dropped.
local function dead_letter(id, envelope, task, err, attempts)
  local t = now_ms()
  redis.call('ZADD', K_DEAD, t, id)
  redis.call('HSET', K_DEADINFO, id, cjson.encode({id = id, task = task, error = err,
                                                   attempts = tonumber(attempts) or 0, when_ms = t}))
  redis.call('HSET', K_DEADENV, id, envelope)
  local extra = redis.call('ZCARD', K_DEAD) - MAX_DEAD
  if extra > 0 then
    for _, old in ipairs(redis.call('ZRANGE', K_DEAD, 0, extra - 1)) do
      redis.call('ZREM', K_DEAD, old)
      redis.call('HDEL', K_DEADINFO, old)
      redis.call('HDEL', K_DEADENV, old)
    end
  end
end

-- Put a task back at the front of the waiting line (re-dispatched work goes ahead of new submissions).
local function requeue_front(id, reply)
  redis.call('LPUSH', K_WAITING, id)
  redis.call('HSET', K_PARKED, id, reply or '')
end

-- What to do when a task's worker is lost: options published for the task name, overridden per call.
local function loss_policy(envelope)
  local _, reply, task, opts = envelope_header(envelope)
  local merged = {}
  for _, raw in ipairs({task and redis.call('HGET', K_REGISTRY, task) or '', opts or ''}) do
    if raw ~= '' then
      local ok, value = pcall(cjson.decode, raw)
      if ok and type(value) == 'table' then
        for k, v in pairs(value) do merged[k] = v end
      end
    end
  end
  local max_attempts = tonumber(merged.max_attempts) or 3
  local on_lost = merged.on_worker_lost
  if on_lost ~= 'fail' then on_lost = 'requeue' end
  return task or '?', reply or '', max_attempts, on_lost
end

-- A task whose worker was lost (its lease already freed): re-queue it (at-least-once), or, when its
-- policy is "fail" or it has been lost max_attempts times, fail it with WorkerLost and dead-letter it.
-- Returns 1 requeued, 2 failed, 0 unknown task.
local function lose(id, attempt, ttl_ms, why)
  local envelope = redis.call('HGET', K_TASKS, id)
  if not envelope then return 0 end
  local task, reply, max_attempts, on_lost = loss_policy(envelope)
  local lost = redis.call('HINCRBY', K_COUNTS, id .. ':l', 1)
  if on_lost == 'requeue' and lost < max_attempts then
    requeue_front(id, reply)
    return 1
  end
  local message = why .. ' (attempt ' .. attempt .. ', lost ' .. lost .. ' of max_attempts ' .. max_attempts .. ')'
  deliver(BASE .. 'result:' .. id, reply, 'E' .. id .. '|WorkerLost|' .. attempt .. '|' .. message, ttl_ms)
  dead_letter(id, envelope, task, 'WorkerLost: ' .. message, attempt)
  finish(id)
  return 2
end

-- Move retries whose backoff ended to the front of the waiting line. Returns how many moved.
local function promote_due()
  if redis.call('ZCARD', K_DELAYED) == 0 then return 0 end
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', now_ms(), 'LIMIT', 0, 100)
  for i = #due, 1, -1 do
    local id = due[i]
    redis.call('ZREM', K_DELAYED, id)
    local envelope = redis.call('HGET', K_TASKS, id)
    if envelope then
      local _, reply = envelope_header(envelope)
      requeue_front(id, reply)
    end
  end
  return #due
end

-- Take the oldest parked task off the waiting line; its grant frame wakes the blocked submitter.
local function unpark()
  local id = redis.call('LPOP', K_WAITING)
  if not id then return nil end
  local reply = redis.call('HGET', K_PARKED, id)
  redis.call('HDEL', K_PARKED, id)
  if reply and reply ~= '' then redis.call('RPUSH', reply, 'G' .. id) end
  return id
end

-- Dispatch parked tasks to idle slots while the cap allows (after a worker joins, capacity rises,
-- a reap, or a retry's backoff ends). Returns how many were dispatched.
local function serve_waiting()
  local served = 0
  local cap = capacity()
  while running() < cap and redis.call('LLEN', K_WAITING) > 0 do
    local slot, worker = pop_live_slot()
    if not slot then break end
    local id = unpark()
    if redis.call('HEXISTS', K_TASKS, id) == 1 then
      dispatch(slot, worker, id)
      redis.call('INCR', K_RUNNING)
      served = served + 1
    else
      redis.call('RPUSH', K_IDLE, slot)  -- a stale id (its task already ended): keep the slot
    end
  end
  return served
end

