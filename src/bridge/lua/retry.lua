-- Puts a job whose run failed, and that has retries left, back to wait for its next run: its
-- id leaves the runner's processing list, its failed run is added to `errors`, its status is
-- the waiting one again, and its id goes in the actor's delayed set, due `delay` milliseconds
-- from now by Redis's clock (`TIME`). Only the runner that still lists the id acts, so a call
-- run twice acts once. A delayed set of another type: the id goes straight to the queue.
--
-- KEYS: 1 the job hash, 2 the delayed set, 3 the runner's processing list, 4 the queue.
-- ARGV: 1 the id, 2 the waiting status, 3 the error, 4 the attempt that failed, 5 now (ISO
-- 8601), 6 the delay (ms), 7 the most errors kept, 8 when it runs again (ISO 8601, for
-- readers).
-- Returns 1 if the job waits for its next run, 0 if the id was not listed.

if redis.call('LREM', KEYS[3], -1, ARGV[1]) == 0 then
  return 0
end
if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  append_error(KEYS[1], ARGV[4], ARGV[5], ARGV[3], ARGV[7])
  redis.pcall('HSET', KEYS[1], 'status', ARGV[2], 'error', ARGV[3], 'updated_at', ARGV[5],
    'run_at', ARGV[8], 'attempts', ARGV[4])
end
if failed(redis.pcall('ZADD', KEYS[2], now_ms() + tonumber(ARGV[6]), ARGV[1])) then
  redis.pcall('RPUSH', KEYS[4], ARGV[1])
end
return 1
