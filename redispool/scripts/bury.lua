-- bury.lua: set aside bytes that are not a task a worker can run (e.g. garbage pushed into an inbox).
-- ARGV[2] an id for the record, ARGV[3] the bytes (truncated by the caller), ARGV[4] error text.
-- Returns 1.
dead_letter(ARGV[2], ARGV[3], '?', ARGV[4], 0)
return 1
