-- Reads the fields of job hashes the runner needs, each only if it is within its size limit,
-- so no value stored by a client can make a runner read more than the limits allow. A value
-- over its limit is not read, not even into this script.
--
-- KEYS: the job hashes.
-- ARGV: 1 the number of fields n, 2..n+1 the fields, n+2..2n+1 each field's limit in bytes.
-- Returns one item per key: the type the key holds if it is no hash (`none`: no key), or one
-- item per field: nil (absent), its value, or its length in bytes (an integer) if over its
-- limit.

-- The most fields a hash may have to be measured whole.
local SMALL_HASH = 64
local n = tonumber(ARGV[1])
local fields = {}
local limits = {}
local smallest = math.huge
for i = 1, n do
  fields[i] = ARGV[1 + i]
  limits[i] = tonumber(ARGV[1 + n + i])
  smallest = math.min(smallest, limits[i])
end

local function read(key)
  local count = redis.pcall('HLEN', key)
  if type(count) == 'table' then
    -- WRONGTYPE: no hash.
    return redis.call('TYPE', key).ok
  end
  if count == 0 then
    -- Redis keeps no empty hash.
    return 'none'
  end
  -- A small hash that takes no more memory than the smallest limit holds no value over any
  -- limit (its memory counts every byte of its values): read at once. (`MEMORY USAGE` walks
  -- every field, so a hash with many is not measured.)
  if count <= SMALL_HASH
      and redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') <= smallest then
    return redis.call('HMGET', key, unpack(fields))
  end
  -- Larger: each field's length first, and only the fields within their limits read.
  local lengths = {}
  local over = false
  for i = 1, n do
    lengths[i] = redis.call('HSTRLEN', key, fields[i])
    if lengths[i] > limits[i] then
      over = true
    end
  end
  if not over then
    return redis.call('HMGET', key, unpack(fields))
  end
  local values = {}
  for i = 1, n do
    if lengths[i] > limits[i] then
      values[i] = lengths[i]
    else
      values[i] = redis.call('HGET', key, fields[i])
    end
  end
  return values
end

local rows = {}
for k = 1, #KEYS do
  rows[k] = read(KEYS[k])
end
return rows
