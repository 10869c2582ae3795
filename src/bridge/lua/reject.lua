-- Drops an id a runner took but cannot run from its processing list and, if asked and its
-- job hash is a hash, ends the job `error` with a message and pushes its reply as for any
-- ending. Only the runner that still lists the id acts, so a call run twice acts once. The
-- id is any bytes (it may be no valid id at all).
--
-- KEYS: 1 the processing list, 2 the job hash, 3 the job's default reply list.
-- ARGV: 1 the id, 2 `1` to end the job, 3 the error status, 4 the message, 5 now (ISO 8601),
-- 6 the reply payload, 7 the reply's time to live (s), 8 `1` if the hash's
-- `reply_queue_name` names the reply list, 9 how long the ended job's hash is kept (s), 10
-- the settle configuration of dependents (JSON, see `settle_dependents`).
-- Returns {listed, ended}: 1 if the id was listed (and dropped), 1 if its job was ended.

if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return {0, 0}
end
if ARGV[2] ~= '1' or redis.call('TYPE', KEYS[2]).ok ~= 'hash' then
  return {1, 0}
end
local ended = 0
if not failed(redis.pcall('HSET', KEYS[2], 'status', ARGV[3], 'error', ARGV[4],
    'updated_at', ARGV[5])) then
  ended = 1
  redis.pcall('EXPIRE', KEYS[2], ARGV[9])
  settle_dependents(ARGV[1], false, cjson.decode(ARGV[10]))
end
push_reply(KEYS[2], KEYS[3], ARGV[8], ARGV[6], ARGV[7])
return {1, ended}
