-- Settles the dependents of jobs that ended (see `settle_dependents`).
--
-- ARGV: 1 the settle configuration (JSON), then pairs of a job id and `1` if it finished
-- (`0`: it failed for good).
-- Returns 1.

local cfg = cjson.decode(ARGV[1])
for i = 2, #ARGV - 1, 2 do
  settle_dependents(ARGV[i], ARGV[i + 1] == '1', cfg)
end
return 1
