-- Runs a job that ended `error` again, at once: its status is the waiting one again, its
-- `attempts` start over (it gets its `retries` anew), its end (`output`, `result`,
-- `finished_at`) is cleared while `error` and `errors` are kept as history, its hash no longer
-- expires, its old reply is dropped, and its id leaves the dead set for the queue.
--
-- KEYS: 1 the job hash, 2 the dead set, 3 the queue, 4 the job's default reply list, 5 the
-- high queue, 6 the low queue (it goes to the queue of its `priority`).
-- ARGV: 1 the id, 2 the error status, 3 the waiting status, 4 now (ISO 8601), 5 `1` if the
-- hash's `reply_queue_name` names the reply list.
-- Returns 1 if queued; 0 if there is no such job or it has not ended in error (a dead-set
-- entry for it is dropped then).

if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then
  redis.pcall('ZREM', KEYS[2], ARGV[1])
  return 0
end
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[2] then
  redis.pcall('ZREM', KEYS[2], ARGV[1])
  return 0
end
local queue = queue_by_priority(KEYS[1], KEYS[3], KEYS[5], KEYS[6])
if failed(redis.pcall('LPUSH', queue, ARGV[1])) then
  return redis.error_reply('the queue ' .. queue .. ' is no list')
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'attempts', '0', 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'output', 'result', 'finished_at', 'run_at')
redis.call('PERSIST', KEYS[1])
local reply = KEYS[4]
if ARGV[5] == '1' then
  local named = redis.call('HGET', KEYS[1], 'reply_queue_name')
  if named and named ~= '' then
    reply = named
  end
end
redis.pcall('DEL', reply)
redis.pcall('ZREM', KEYS[2], ARGV[1])
return 1
