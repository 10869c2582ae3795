-- Decides whether a taken job whose hash lists `prerequisites` may run. It may if they have
-- all finished (or were found finished before: `prerequisites_met`). If one of them is
-- missing or ended in error, it fails (the runner ends it `error` naming that one). Otherwise
-- it waits: its id leaves the processing list, its status becomes the waiting one, and it is
-- added to the `dependents` of each prerequisite not finished yet, whose ending queues it
-- (`settle_dependents`). Atomic, so a prerequisite ending meanwhile is seen either way.
--
-- KEYS: 1 the job hash, 2 the processing list.
-- ARGV: 1 the id, 2 the job-hash prefix, 3 the waiting status, 4 and 5 the finished status
-- (both spellings), 6 the error status, 7 now (ISO 8601), 8 the actor, 9.. the prerequisites.
-- Returns {'run'}, {'wait', n}, {'fail', why}, or {'gone'} (the id was no longer listed).

if redis.call('HGET', KEYS[1], 'prerequisites_met') == '1' then
  return {'run'}
end
local pending = {}
for i = 9, #ARGV do
  local key = ARGV[2] .. ARGV[i]
  if redis.call('TYPE', key).ok ~= 'hash' then
    return {'fail', 'prerequisite ' .. ARGV[i] .. ': no such job'}
  end
  local status = redis.call('HGET', key, 'status')
  if status == ARGV[6] then
    return {'fail', 'prerequisite ' .. ARGV[i] .. ' ended in error'}
  end
  if status ~= ARGV[4] and status ~= ARGV[5] then
    table.insert(pending, key)
  end
end
if #pending == 0 then
  redis.call('HSET', KEYS[1], 'prerequisites_met', '1')
  return {'run'}
end
if redis.call('LREM', KEYS[2], -1, ARGV[1]) == 0 then
  return {'gone'}
end
for _, key in ipairs(pending) do
  local dependents = {}
  local ok, decoded = pcall(cjson.decode, redis.call('HGET', key, 'dependents') or '[]')
  -- A list only (a client may have written anything there).
  if ok and type(decoded) == 'table' and (#decoded > 0 or next(decoded) == nil) then
    dependents = decoded
  end
  local listed = false
  for _, id in ipairs(dependents) do
    if id == ARGV[1] then
      listed = true
    end
  end
  if not listed then
    table.insert(dependents, ARGV[1])
    redis.call('HSET', key, 'dependents', cjson.encode(dependents))
  end
end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'updated_at', ARGV[7], 'actor_id', ARGV[8])
return {'wait', #pending}
