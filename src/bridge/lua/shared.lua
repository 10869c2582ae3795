-- Shared by the scripts that end jobs; put before each of them (`store.rs`).

-- Whether a `redis.pcall` reply is an error.
local function failed(reply)
  return type(reply) == 'table' and reply.err ~= nil
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
