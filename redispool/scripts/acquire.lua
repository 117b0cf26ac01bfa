-- acquire.lua: GoPool's Submit for one or many tasks of one client, in one round trip.
-- ARGV[2] "park" or "try", ARGV[3] queue_size (see below), ARGV[4] the submitter's reply key,
-- ARGV[5] how many frames waiting in that reply list to take back with the answer (0: none),
-- ARGV[6..] pairs of task id and envelope.
-- Returns one code per task, in order, followed by the reply frames taken (so a submitting client reads
-- its results and grants without a round trip of its own):
--   1 dispatched: a live slot was popped, running incremented, the attempt counted, the task pushed to
--     the slot's worker;
--   2 parked: the pool is full or others wait, so the task joined the waiting line; a grant frame to the
--     reply key says when it is dispatched (the submitter blocks until then);
--   3 queued: parked, and fewer than queue_size tasks waited ahead of it (GoPool's task queue), so the
--     submitter need not wait for its grant;
--   0 full (mode "try"): nothing written for that task.
-- Idempotent: a repeated call for a task id already known answers 1 or 2 and writes nothing for it.
local mode, queue_size, reply, take = ARGV[2], tonumber(ARGV[3]) or 0, ARGV[4], tonumber(ARGV[5]) or 0
local codes = {}

if promote_due() > 0 then serve_waiting() end
local cap = capacity()

for i = 6, #ARGV, 2 do
  local id, envelope = ARGV[i], ARGV[i + 1]
  local code
  if redis.call('HEXISTS', K_TASKS, id) == 1 then
    code = redis.call('HEXISTS', K_PARKED, id) == 1 and 2 or 1
  elseif redis.call('EXISTS', BASE .. 'result:' .. id) == 1 then
    code = 1
  else
    -- No barging: while anyone is parked, a new task queues behind them even if a slot looks free.
    local waiting = redis.call('LLEN', K_WAITING)
    if waiting == 0 and running() < cap then
      local slot, worker = pop_live_slot()
      if slot then
        redis.call('HSET', K_TASKS, id, envelope)
        dispatch(slot, worker, id, envelope)
        redis.call('INCR', K_RUNNING)
        code = 1
      end
    end
    if not code then
      if mode ~= 'park' then
        code = 0
      else
        -- A queued task's submitter does not wait: its dispatch needs no grant frame (reply key "").
        if waiting < queue_size then code = 3 else code = 2 end
        redis.call('HSET', K_TASKS, id, envelope)
        redis.call('HSET', K_PARKED, id, code == 2 and reply or '')
        redis.call('RPUSH', K_WAITING, id)
      end
    end
  end
  codes[#codes + 1] = code
end
if take > 0 then
  local frames = redis.call('LPOP', reply, take)
  if frames then
    for _, frame in ipairs(frames) do codes[#codes + 1] = frame end
  end
end
return codes
