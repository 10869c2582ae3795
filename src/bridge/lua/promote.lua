-- Moves the due ids of an actor's delayed set into its queues (each by its job's
-- `priority`), soonest first. Redis's own clock (`TIME`) decides what is due, so no runner's
-- clock is trusted over it. An id the queue refuses (a key of another type) stays in the set;
-- a set that is no sorted set moves nothing.
--
-- KEYS: 1 the delayed set (score: milliseconds since the epoch), 2 the queue, 3 the high
-- queue, 4 the low queue.
-- ARGV: 1 the most ids to move, 2 the job-hash prefix.
-- Returns how many ids moved.

if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then
  return 0
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local moved = 0
for _, id in ipairs(due) do
  local queue = queue_by_priority(ARGV[2] .. id, KEYS[2], KEYS[3], KEYS[4])
  local pushed = redis.pcall('LPUSH', queue, id)
  if type(pushed) == 'table' and pushed.err then
    return moved
  end
  redis.call('ZREM', KEYS[1], id)
  moved = moved + 1
end
return moved
