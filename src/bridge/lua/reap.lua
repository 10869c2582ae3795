-- Takes back the jobs of the actor's runners whose heartbeat expired: each id in such a
-- runner's processing list goes back to the queue, oldest first, or ends `error` when its
-- job was requeued more often than its `retries` allow. An ended job, or an id with no job
-- hash, is dropped. A write that fails (a key of another type, say) is skipped, never the
-- whole reap: one bad entry stops no other.
--
-- KEYS[1]: the actor's set of runners.
-- ARGV: 1 this runner, 2 and 3 a heartbeat key before and after the runner id, 4 the
-- actor's processing-list prefix, 5 the queue, 6 the job-hash prefix, 7 the error status,
-- 8 the reply-list prefix, 9 `1` if the hash's `reply_queue_name` names the reply list and
-- replies are JSON (rhailib), 10 now (ISO 8601), 11 the finished status, 12 its other
-- spelling, 13 the most ids one call takes back (so no call holds Redis for long), 14 a
-- reply's time to live (s), 15 how long the hash of a job ended here is kept (s).
-- Returns {requeued, failed, skipped, more}: skipped counts what was left as it was (a
-- processing list that is no list; an id the queue would not take: the call ends there, and
-- every id not yet taken back stays where it is); more is 1 if the call stopped at its
-- budget with ids left. A call that says more has taken ids out of a list for good.

local runners = redis.pcall('SMEMBERS', KEYS[1])
if failed(runners) then
  return {0, 0, 1, 0}
end
local moved, ended, skipped = 0, 0, 0
local budget = tonumber(ARGV[13])
for _, runner in ipairs(runners) do
  if budget <= 0 then
    return {moved, ended, skipped, 1}
  end
  if runner ~= ARGV[1] and redis.call('EXISTS', ARGV[2] .. runner .. ARGV[3]) == 0 then
    local processing = ARGV[4] .. runner
    local emptied = false
    while true do
      if budget <= 0 then
        break
      end
      budget = budget - 1
      local id = redis.pcall('LPOP', processing)
      if failed(id) then
        -- Not a list: nothing to take back.
        skipped = skipped + 1
        emptied = true
        break
      end
      if not id then
        emptied = true
        break
      end
      local job = ARGV[6] .. id
      local status = false
      if redis.call('TYPE', job).ok == 'hash' then
        status = redis.call('HGET', job, 'status') or ''
      end
      if status and status ~= ARGV[7] and status ~= ARGV[11] and status ~= ARGV[12] then
        local requeues = (tonumber(redis.call('HGET', job, 'requeues') or '0') or 0) + 1
        local retries = tonumber(redis.call('HGET', job, 'retries') or '0') or 0
        if requeues > retries then
          local message = 'its runners died: requeued ' .. (requeues - 1) .. ' times, retries '
            .. retries
          redis.pcall('HSET', job, 'requeues', requeues, 'status', ARGV[7], 'error', message,
            'updated_at', ARGV[10])
          redis.pcall('EXPIRE', job, ARGV[15])
          -- Hero: the status; rhailib: the task as JSON, on the queue its hash names.
          local payload = ARGV[7]
          if ARGV[9] == '1' then
            payload = '{"task_id":' .. cjson.encode(id) .. ',"status":' .. cjson.encode(ARGV[7])
              .. ',"output":null,"error":' .. cjson.encode(message) .. '}'
          end
          push_reply(job, ARGV[8] .. id, ARGV[9], payload, ARGV[14])
          ended = ended + 1
        elseif failed(redis.pcall('RPUSH', ARGV[5], id)) then
          -- The queue takes no id (it is the one queue of every runner here): this id goes
          -- back where it was, and every list waits for a later reap.
          redis.call('LPUSH', processing, id)
          return {moved, ended, skipped + 1, 0}
        else
          redis.pcall('HSET', job, 'requeues', requeues)
          moved = moved + 1
        end
      end
    end
    if not emptied then
      return {moved, ended, skipped, 1}
    end
    redis.call('SREM', KEYS[1], runner)
  end
end
return {moved, ended, skipped, 0}
