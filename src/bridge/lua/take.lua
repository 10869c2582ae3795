-- Moves up to ARGV[1] ids into a runner's processing list from an actor's queues, in the
-- order given (each queue until it is empty, then the next), oldest first. A queue that is
-- no list is passed over.
--
-- KEYS: 1 the processing list, 2.. the queues, in the order to take from.
-- ARGV: 1 the most ids to move.
-- Returns the ids moved.

local ids = {}
local max = tonumber(ARGV[1])
for k = 2, #KEYS do
  while #ids < max do
    local id = redis.pcall('LMOVE', KEYS[k], KEYS[1], 'RIGHT', 'LEFT')
    if not id or type(id) == 'table' then
      break
    end
    table.insert(ids, id)
  end
  if #ids >= max then
    break
  end
end
return ids
