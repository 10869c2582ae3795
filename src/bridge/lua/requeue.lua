-- Moves an id from a runner's processing list back to the tail of its queue (taken next; the
-- queue of its job's `priority`), if it is still listed there, and sets its job's status. Run
-- twice, it moves it once.
--
-- KEYS: 1 the processing list, 2 the queue, 3 the job hash, 4 the high queue, 5 the low
-- queue.
-- ARGV: 1 the id, 2 the status to set (empty: leave it).
-- Returns 1 if moved, 0 if the id was not listed; the queue's error if it would not take the
-- id (the id then stays listed).

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
local pushed = redis.pcall('RPUSH', queue_by_priority(KEYS[3], KEYS[2], KEYS[4], KEYS[5]),
  ARGV[1])
if failed(pushed) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
  return pushed
end
if ARGV[2] ~= '' then
  redis.pcall('HSET', KEYS[3], 'status', ARGV[2])
end
return 1
