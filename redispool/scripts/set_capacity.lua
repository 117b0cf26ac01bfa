-- set_capacity.lua: set the cluster-wide cap (ARGV[2], an integer >= 0) or, when ARGV[2] is "",
-- restore the default (the number of registered slots). A rise serves the waiting line at once; a fall
-- takes effect as running tasks end (release.lua returns slots instead of handing them on).
-- Returns the number of parked tasks dispatched.
if ARGV[2] == '' then
  redis.call('DEL', K_CAPACITY)
else
  redis.call('SET', K_CAPACITY, ARGV[2])
end
return serve_waiting()
