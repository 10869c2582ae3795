-- Deletes the job hashes among KEYS whose status is one of the given ones (and, if asked,
-- whose `actor_id` is the given actor), with their default reply lists; a key that is no hash
-- is left alone. With a dead set, the ids deleted leave it too.
--
-- KEYS: job hashes.
-- ARGV: 1 the job-hash prefix, 2 the reply-list prefix, 3 the actor (empty: any), 4 the dead
-- set (empty: none), 5.. the statuses to delete.
-- Returns how many jobs were deleted.

local deleted = 0
for _, key in ipairs(KEYS) do
  if redis.call('TYPE', key).ok == 'hash' then
    local fields = redis.call('HMGET', key, 'status', 'actor_id')
    local wanted = false
    for i = 5, #ARGV do
      if fields[1] == ARGV[i] then
        wanted = true
      end
    end
    if wanted and ARGV[3] ~= '' and fields[2] ~= ARGV[3] then
      wanted = false
    end
    if wanted then
      local id = string.sub(key, #ARGV[1] + 1)
      redis.call('DEL', key)
      redis.pcall('DEL', ARGV[2] .. id)
      if ARGV[4] ~= '' then
        redis.pcall('ZREM', ARGV[4], id)
      end
      deleted = deleted + 1
    end
  end
end
return deleted
