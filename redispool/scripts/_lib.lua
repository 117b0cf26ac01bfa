-- _lib.lua: prepended to every script (see backend.py). Names the pool's shared keys and the moves
-- that several scripts make. Every script receives:
--   KEYS[1..10] the shared keys, in keys.SHARED_KEYS order; script-specific keys follow.
--   ARGV[1]     the pool's tagged key base, e.g. "rp:{default}:". Per-worker inbox keys are derived from it
--               in the script (a slot's worker is only known once the slot is popped); they carry the same
--               hash tag, so every key a script touches lives in the pool's one Cluster slot.
local K_IDLE, K_RUNNING, K_CAPACITY, K_SLOTS, K_WAITING = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_TASKS, K_LEASES, K_OWNER, K_PARKED, K_HANDOFF = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local BASE = ARGV[1]

-- The cluster-wide cap: the capacity key, or the number of registered slots when it is unset.
local function capacity()
  local cap = redis.call('GET', K_CAPACITY)
  if cap then return tonumber(cap) end
  return redis.call('HLEN', K_SLOTS)
end

local function running()
  return tonumber(redis.call('GET', K_RUNNING) or '0')
end

-- Pop the most recently idled slot that is still registered (LIFO, as GoPool's worker stack).
-- Slots of workers that left are dropped on the way, so no task is ever sent to a departed worker.
local function pop_live_slot()
  while true do
    local slot = redis.call('RPOP', K_IDLE)
    if not slot then return nil, nil end
    local worker = redis.call('HGET', K_SLOTS, slot)
    if worker then return slot, worker end
  end
end

local function lease(slot, id)
  redis.call('HSET', K_LEASES, slot, id)
  redis.call('HSET', K_OWNER, id, slot)
end

-- Lease `slot` to task `id` and push the dispatch frame "<slot>|<envelope>" to the worker's inbox.
local function dispatch(slot, worker, id)
  lease(slot, id)
  redis.call('HDEL', K_HANDOFF, slot)
  redis.call('RPUSH', BASE .. 'inbox:' .. worker, slot .. '|' .. redis.call('HGET', K_TASKS, id))
end

-- Take the oldest parked task off the waiting line; its grant frame wakes the blocked submitter.
local function unpark()
  local id = redis.call('LPOP', K_WAITING)
  if not id then return nil end
  local reply = redis.call('HGET', K_PARKED, id)
  redis.call('HDEL', K_PARKED, id)
  if reply then redis.call('RPUSH', reply, 'G' .. id) end
  return id
end

-- Dispatch parked tasks to idle slots while the cap allows (after a worker joins or capacity rises).
local function serve_waiting()
  local served = 0
  local cap = capacity()
  while running() < cap and redis.call('LLEN', K_WAITING) > 0 do
    local slot, worker = pop_live_slot()
    if not slot then break end
    dispatch(slot, worker, unpark())
    redis.call('INCR', K_RUNNING)
    served = served + 1
  end
  return served
end

