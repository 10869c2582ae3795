-- Takes back the jobs of the actor's runners whose heartbeat expired. For each id in such a
-- runner's processing list, oldest first:
-- - a job no worker had started (status still the waiting one) goes back to the queue and uses
--   no retry (`requeues` counts it; after MAX_FREE_REQUEUES it ends `error`, so a job that
--   kills every runner before it starts cannot circle for ever);
-- - a job that was running when its runner died has failed a run: its error joins `errors`;
--   with retries left (`attempts` <= `retries`) it waits its backoff in the delayed set, else
--   it ends `error`, is listed dead, and its reply is pushed;
-- - an ended job, or an id with no job hash, is dropped.
-- A write that fails (a key of another type, say) is skipped, never the whole reap: one bad
-- entry stops no other.
--
-- KEYS[1]: the actor's set of runners.
-- ARGV: 1 this runner, 2 and 3 a heartbeat key before and after the runner id, 4 the
-- actor's processing-list prefix, 5 the queue, 6 the job-hash prefix, 7 the error status,
-- 8 the reply-list prefix, 9 `1` if the hash's `reply_queue_name` names the reply list and
-- replies are JSON (rhailib), 10 now (ISO 8601), 11 the finished status, 12 its other
-- spelling, 13 the most ids one call takes back (so no call holds Redis for long), 14 a
-- reply's time to live (s), 15 how long the hash of a job ended here is kept (s), 16 the
-- started status, 17 the waiting status, 18 the delayed set, 19 the dead set, 20 the most
-- ids a dead set keeps, 21 the most errors kept per job, 22 the settle configuration of
-- dependents (JSON, see `settle_dependents`), 23 the high queue, 24 the low queue (a job goes
-- back to the queue of its `priority`).
-- Returns {requeued, failed, skipped, more}: requeued counts jobs put back (in the queue, or
-- in the delayed set to run again); skipped counts what was left as it was (a processing
-- list that is no list; an id the queue would not take: the call ends there, and every id
-- not yet taken back stays where it is); more is 1 if the call stopped at its budget with
-- ids left. A call that says more has taken ids out of a list for good.

local MAX_FREE_REQUEUES = 100
local settle = cjson.decode(ARGV[22])

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
        local attempts = tonumber(redis.call('HGET', job, 'attempts') or '0') or 0
        local running = status == ARGV[16]
        local message = nil
        if running then
          message = 'its runner died while running it (attempt ' .. attempts .. ')'
          append_error(job, attempts, ARGV[10], message, ARGV[21])
          if attempts > retries then
            message = message .. '; no retries left (retries ' .. retries .. ')'
          else
            message = nil
          end
        elseif requeues > MAX_FREE_REQUEUES then
          message = 'its runners died: requeued ' .. (requeues - 1)
            .. ' times without a worker starting it'
        end
        if message then
          redis.pcall('HSET', job, 'requeues', requeues, 'status', ARGV[7], 'error', message,
            'updated_at', ARGV[10])
          redis.pcall('EXPIRE', job, ARGV[15])
          if running then
            list_dead(ARGV[19], id, ARGV[20], ARGV[15])
          end
          -- Hero: the status; rhailib: the task as JSON, on the queue its hash names.
          local payload = ARGV[7]
          if ARGV[9] == '1' then
            payload = '{"task_id":' .. cjson.encode(id) .. ',"status":' .. cjson.encode(ARGV[7])
              .. ',"output":null,"error":' .. cjson.encode(message) .. '}'
          end
          push_reply(job, ARGV[8] .. id, ARGV[9], payload, ARGV[14])
          settle_dependents(id, false, settle)
          ended = ended + 1
        elseif running then
          -- A run failed with retries left: it waits its backoff (`backoff` seconds, or the
          -- default schedule), by Redis's clock.
          local backoff = tonumber(redis.call('HGET', job, 'backoff') or '')
          if not backoff or backoff < 0 then
            backoff = attempts ^ 4 + 15 + math.random(0, 9) * (attempts + 1)
          end
          local due = now_ms() + math.floor(backoff * 1000)
          redis.pcall('HSET', job, 'requeues', requeues, 'status', ARGV[17],
            'error', 'its runner died while running it (attempt ' .. attempts .. ')',
            'updated_at', ARGV[10])
          if failed(redis.pcall('ZADD', ARGV[18], due, id)) then
            redis.pcall('RPUSH', queue_by_priority(job, ARGV[5], ARGV[23], ARGV[24]), id)
          end
          moved = moved + 1
        elseif failed(redis.pcall('RPUSH', queue_by_priority(job, ARGV[5], ARGV[23], ARGV[24]),
            id)) then
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
