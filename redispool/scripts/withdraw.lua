-- withdraw.lua: a blocked submitter gave up (timeout or interrupt); take its parked task back.
-- ARGV[2] task id.
-- Returns 1 withdrawn (the task will never run), 0 not parked (already dispatched: the caller keeps
-- its future). Idempotent.
local id = ARGV[2]
if redis.call('LREM', K_WAITING, 1, id) == 0 then return 0 end
redis.call('HDEL', K_PARKED, id)
finish(id)
return 1
