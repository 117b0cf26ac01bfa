-- reap.lua: recover from dead workers (no heartbeat: killed, paused past the TTL, or cut off).
-- KEYS[18] the reaper lock. ARGV[2] lock time in ms (at most one reap runs per period, whoever calls it),
-- ARGV[3] result TTL in ms (for tasks failed with WorkerLost).
-- Removes dead workers' slots from the registry and the idle stack, deletes their inboxes, frees each of
-- their leases exactly once (running decremented) and re-queues the task at the front of the waiting line,
-- or fails it with WorkerLost and dead-letters it (on_worker_lost "fail", or max_attempts losses).
-- Then moves due retries and serves the waiting line.
-- Returns the number of tasks recovered, or -1 when another reap ran within the lock time.
if not redis.call('SET', KEYS[18], '1', 'NX', 'PX', ARGV[2]) then return -1 end
local ttl_ms = ARGV[3]
local dead = {}
local function is_dead(worker)
  if dead[worker] == nil then dead[worker] = not alive(worker) end
  return dead[worker]
end

local slots = redis.call('HGETALL', K_SLOTS)
for i = 1, #slots, 2 do
  if is_dead(slots[i + 1]) then
    redis.call('HDEL', K_SLOTS, slots[i])
    redis.call('LREM', K_IDLE, 0, slots[i])
  end
end

local recovered = 0
local leases = redis.call('HGETALL', K_LEASES)
for i = 1, #leases, 2 do
  local slot = leases[i]
  local worker = worker_of(slot)
  if worker and is_dead(worker) then
    local id, attempt = split_lease(leases[i + 1])
    free_lease(slot, id)
    redis.call('DECR', K_RUNNING)
    lose(id, attempt, ttl_ms, 'worker ' .. worker .. ' stopped heartbeating')
    recovered = recovered + 1
  end
end

for _, worker in ipairs(redis.call('HKEYS', K_WORKERS)) do
  if is_dead(worker) then redis.call('HDEL', K_WORKERS, worker) end
end
for worker, is in pairs(dead) do
  if is then redis.call('DEL', BASE .. 'inbox:' .. worker) end
end

promote_due()
serve_waiting()
return recovered
