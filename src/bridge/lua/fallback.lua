-- Ends a job whose result Redis refused `error` instead, with a small result: what a runner
-- writes when it cannot record a job's ending (its hash key or reply key holds another type,
-- the result is over Redis's limits, Redis is at its maxmemory).
--
-- KEYS: 1 the job hash, 2 its default reply list, 3 the runner's processing list.
-- ARGV: 1 the job id, 2 the ending's time (`updated_at`), 3 the reply's time to live (s),
-- 4 `1` if the hash's `reply_queue_name` names the reply list, 5 the error status, 6 the
-- error message, 7 the reply, 8 `1` to push the reply, 9 how long the hash is kept (s), 10
-- the settle configuration of dependents (JSON, see `settle_dependents`).
-- Returns {problem}: empty if the error was recorded in the hash, else why not. The id
-- leaves the processing list either way.

local function problem(reply)
  if type(reply) == 'table' and reply.err then
    return reply.err
  end
  return nil
end

-- HDEL only frees memory, and Redis checks a script against its maxmemory only until its
-- first write: so this small error is recorded even when the result was refused for OOM.
redis.pcall('HDEL', KEYS[1], 'output', 'result')
local refused = problem(redis.pcall('HSET', KEYS[1], 'status', ARGV[5], 'error', ARGV[6],
  'updated_at', ARGV[2]))
redis.pcall('EXPIRE', KEYS[1], ARGV[9])
if not refused then
  settle_dependents(ARGV[1], false, cjson.decode(ARGV[10]))
end
if ARGV[8] == '1' then
  push_reply(KEYS[1], KEYS[2], ARGV[4], ARGV[7], ARGV[3])
end
redis.pcall('LREM', KEYS[3], -1, ARGV[1])
return {refused or ''}
