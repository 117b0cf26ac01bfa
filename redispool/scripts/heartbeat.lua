-- heartbeat.lua: a worker says it is alive; its heartbeat key expires ARGV[3] ms from now (Redis clock).
-- ARGV[2] worker id, ARGV[4] "draining" while a deregistered worker finishes its tasks, else "".
-- Returns 1, or 0 when the worker is no longer registered (it was reaped after a pause, or Redis lost
-- its state): the worker must register again with fresh slots; nothing is written then.
local worker, ttl_ms, mode = ARGV[2], ARGV[3], ARGV[4]
if mode ~= 'draining' and redis.call('HEXISTS', K_WORKERS, worker) == 0 then return 0 end
redis.call('SET', BASE .. 'hb:' .. worker, '1', 'PX', ttl_ms)
return 1
