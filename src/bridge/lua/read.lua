-- Reads the fields of a job hash the runner needs, each only if it is within its size
-- limit, so no value stored by a client can make a runner read more than the limits allow.
--
-- KEYS: 1 the job hash.
-- ARGV: 1 the number of fields n, 2..n+1 the fields, n+2..2n+1 each field's limit in bytes.
-- Returns the type the key holds if it is no hash (`none`: no key), or one item per field:
-- nil (absent), its value, or its length in bytes (an integer) if over its limit.

local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' then
  return kind
end
local n = tonumber(ARGV[1])
local fields = {}
local over = false
local lengths = {}
for i = 1, n do
  fields[i] = ARGV[1 + i]
  lengths[i] = redis.call('HSTRLEN', KEYS[1], fields[i])
  if lengths[i] > tonumber(ARGV[1 + n + i]) then
    over = true
  end
end
if not over then
  return redis.call('HMGET', KEYS[1], unpack(fields))
end
-- A value over its limit is not read, not even into this script.
local values = {}
for i = 1, n do
  if lengths[i] > tonumber(ARGV[1 + n + i]) then
    values[i] = lengths[i]
  else
    values[i] = redis.call('HGET', KEYS[1], fields[i])
  end
end
return values
