-- Shared by the scripts that end jobs; put before each of them (`store.rs`).

-- Whether a `redis.pcall` reply is an error.
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
end

-- The queue a job goes (back) to, by its hash's `priority`: `high`, `low`, or else normal.
local function queue_by_priority(job, normal, high, low)
  local priority = redis.pcall('HGET', job, 'priority')
  if priority == 'high' then
    return high
  elseif priority == 'low' then
    return low
  end
  return normal
end

-- Pushes `payload` on a job's reply list, kept `ttl` seconds: `default`, or, if `named` is
-- `1`, the list the job's hash names in `reply_queue_name` (when it names one). A list that
-- refuses the push (a key of another type) is left as it is.
local function push_reply(job, default, named, payload, ttl)
  local reply = default
  if named == '1' then
    local name = redis.pcall('HGET', job, 'reply_queue_name')
    if type(name) == 'string' and name ~= '' then
      reply = name
    end
  end
  if not failed(redis.pcall('LPUSH', reply, payload)) then
    redis.pcall('EXPIRE', reply, ttl)
  end
end


-- Appends a failed run to a job's `errors` (a JSON list of {attempt, at, error}), keeping the
-- last `keep`. A value that is no JSON list is replaced.
local function append_error(job, attempt, at, message, keep)
  local errors = {}
  local old = redis.pcall('HGET', job, 'errors')
  if type(old) == 'string' then
    local ok, decoded = pcall(cjson.decode, old)
    if ok and type(decoded) == 'table' and (#decoded > 0 or next(decoded) == nil) then
      errors = decoded
    end
  end
  table.insert(errors, {attempt = tonumber(attempt) or 0, at = at, error = message})
  while #errors > tonumber(keep) do
    table.remove(errors, 1)
  end
  local ok, encoded = pcall(cjson.encode, errors)
  if ok then
    redis.pcall('HSET', job, 'errors', encoded)
  end
end

-- Redis's clock, in milliseconds since the epoch.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Lists an ended job in its actor's dead set (scored by when), keeping at most `most` ids and
-- none older than `ttl` seconds; the set itself expires `ttl` seconds after its last entry.
local function list_dead(dead, id, most, ttl)
  local now = now_ms()
  if failed(redis.pcall('ZADD', dead, now, id)) then
    return
  end
  redis.pcall('ZREMRANGEBYSCORE', dead, '-inf', now - tonumber(ttl) * 1000)
  redis.pcall('ZREMRANGEBYRANK', dead, 0, -(tonumber(most) + 1))
  redis.pcall('EXPIRE', dead, ttl)
end

-- Whether every prerequisite of the waiting job `key` has finished (a prerequisite whose hash
-- is gone finished and expired: it counts as finished).
local function prerequisites_finished(key, cfg)
  local ok, ids = pcall(cjson.decode, redis.call('HGET', key, 'prerequisites') or '[]')
  if not ok or type(ids) ~= 'table' then
    return true
  end
  for _, p in ipairs(ids) do
    local status = redis.pcall('HGET', cfg.prefix .. tostring(p), 'status')
    if type(status) == 'string' and status ~= cfg.finished[1] and status ~= cfg.finished[2] then
      return false
    end
  end
  return true
end

-- Settles the jobs waiting on job `id` (listed in its hash's `dependents`, a JSON list) now
-- that it has ended: if it finished (`ok`), each dependent whose prerequisites have all
-- finished is queued; if it failed for good, each dependent ends `error` naming it, its reply
-- pushed, and so on down their own dependents. Idempotent: only a job still waiting moves.
-- `cfg` (JSON in ARGV): prefix (job hashes), queue (queues, before the actor), reply (reply
-- lists), named ('1': rhailib replies), waiting, dispatched, error, finished (both
-- spellings), now, keep (s), ttl (s).
local function settle_dependents(id, ok, cfg)
  local todo = {{id, ok}}
  local budget = 10000
  while #todo > 0 and budget > 0 do
    local item = table.remove(todo)
    local list = redis.pcall('HGET', cfg.prefix .. item[1], 'dependents')
    local deps = {}
    if type(list) == 'string' then
      local decoded_ok, decoded = pcall(cjson.decode, list)
      if decoded_ok and type(decoded) == 'table' and (#decoded > 0 or next(decoded) == nil) then
        deps = decoded
      end
    end
    for _, dep in ipairs(deps) do
      budget = budget - 1
      if type(dep) == 'string' then
        local key = cfg.prefix .. dep
        if redis.call('TYPE', key).ok == 'hash'
            and redis.call('HGET', key, 'status') == cfg.waiting then
          if item[2] then
            if prerequisites_finished(key, cfg) then
              local actor = redis.call('HGET', key, 'actor_id') or ''
              local queue = queue_by_priority(key, cfg.queue .. actor, cfg.queue_high .. actor,
                cfg.queue_low .. actor)
              if not failed(redis.pcall('LPUSH', queue, dep)) then
                redis.call('HSET', key, 'status', cfg.dispatched, 'prerequisites_met', '1',
                  'updated_at', cfg.now)
              end
            end
          else
            local message = 'prerequisite ' .. item[1] .. ' ended in error'
            redis.call('HSET', key, 'status', cfg.error, 'error', message, 'updated_at', cfg.now,
              'finished_at', cfg.now)
            redis.pcall('EXPIRE', key, cfg.keep)
            local payload = cfg.error
            if cfg.named == '1' then
              payload = cjson.encode({task_id = dep, status = cfg.error, output = cjson.null,
                error = message})
            end
            push_reply(key, cfg.reply .. dep, cfg.named, payload, cfg.ttl)
            table.insert(todo, {dep, false})
          end
        end
      end
    end
  end
end
