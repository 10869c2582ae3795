-- Finds where a stopped job is and acts on it, atomically. A key of another type where a
-- list is expected (a runner's processing list, the queue) counts as not holding the job,
-- and a write that fails is reported, so no bad key stops the routing of other jobs.
--
-- KEYS: 1 the actor's set of runners, 2 the queue, 3 the job hash, 4 this runner's
-- processing list, 5 the job's default reply list, 6 the high queue, 7 the low queue.
-- ARGV: 1 the job id, 2 this runner, 3 the actor's processing-list prefix, 4 and 5 a
-- control list's key before and after the runner id, 6 and 7 a heartbeat key before and
-- after the runner id, 8 the reply payload, 9 the reply's time to live (s), 10 `1` if the
-- hash's `reply_queue_name` names the reply list, 11 how long a cancelled job's hash is kept
-- (s), 12 the number N of ended statuses, then N ended statuses, then the cancelled job's
-- fields as name/value pairs, then (last) the settle configuration of dependents (JSON, see
-- `settle_dependents`).
-- Returns {where, runner, problem}: `unknown` (no hash), `ended`, `here` (in this runner's
-- processing list), `forwarded` (in live `runner`'s: `stop ID` pushed to its control list),
-- `cancelled` (it was queued, waiting for its prerequisites, or held by a runner whose
-- heartbeat expired: ended here),
-- `nowhere` (with `problem` if the stop could not be passed on).

-- Whether list `key` holds the id (a key of another type holds nothing).
local function holds(key)
  local found = redis.pcall('LPOS', key, ARGV[1])
  return found and not failed(found)
end

if redis.call('TYPE', KEYS[3]).ok ~= 'hash' then
  return {'unknown'}
end
local status = redis.call('HGET', KEYS[3], 'status') or ''
local ended = tonumber(ARGV[12])
for i = 13, 12 + ended do
  if status == ARGV[i] then
    return {'ended'}
  end
end

local settle = cjson.decode(ARGV[#ARGV])

local function cancel()
  local fields = {}
  for i = 13 + ended, #ARGV - 1 do
    table.insert(fields, ARGV[i])
  end
  redis.pcall('HSET', KEYS[3], unpack(fields))
  redis.pcall('EXPIRE', KEYS[3], ARGV[11])
  push_reply(KEYS[3], KEYS[5], ARGV[10], ARGV[8], ARGV[9])
  settle_dependents(ARGV[1], false, settle)
end

if status == settle.waiting then
  cancel()
  return {'cancelled'}
end

if holds(KEYS[4]) then
  return {'here'}
end
local runners = redis.pcall('SMEMBERS', KEYS[1])
if failed(runners) then
  runners = {}
end
for _, runner in ipairs(runners) do
  local processing = ARGV[3] .. runner
  if runner ~= ARGV[2] and holds(processing) then
    local control = ARGV[4] .. runner .. ARGV[5]
    if redis.call('EXISTS', ARGV[6] .. runner .. ARGV[7]) == 1 then
      local pushed = redis.pcall('RPUSH', control, 'stop ' .. ARGV[1])
      if failed(pushed) then
        return {'nowhere', runner, pushed.err}
      end
      return {'forwarded', runner}
    end
    -- Its heartbeat expired: the reaper would run it again. Cancelled here; the runner is
    -- told too, in case it is only cut off from Redis for a while (its list then expires).
    redis.call('LREM', processing, 0, ARGV[1])
    cancel()
    if not failed(redis.pcall('RPUSH', control, 'stop ' .. ARGV[1])) then
      redis.pcall('EXPIRE', control, ARGV[9])
    end
    return {'cancelled', runner}
  end
end
for _, queue in ipairs({KEYS[2], KEYS[6], KEYS[7]}) do
  local removed = redis.pcall('LREM', queue, 0, ARGV[1])
  if not failed(removed) and removed > 0 then
    cancel()
    return {'cancelled'}
  end
end
return {'nowhere'}
