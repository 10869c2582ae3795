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

