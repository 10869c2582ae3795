-- Records a job that ended in error after running: its failed run joins `errors`, and its id
-- is listed in the actor's dead set (see `list_dead`).
--
-- KEYS: 1 the job hash, 2 the dead set.
-- ARGV: 1 the id, 2 the attempt that failed, 3 when (ISO 8601), 4 the error, 5 the most
-- errors kept, 6 the most ids a dead set keeps, 7 how long a dead job is kept (s).
-- Returns 1.

if redis.call('TYPE', KEYS[1]).ok == 'hash' then
  append_error(KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
end
list_dead(KEYS[2], ARGV[1], ARGV[6], ARGV[7])
return 1
