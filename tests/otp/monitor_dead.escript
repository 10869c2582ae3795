#!/usr/bin/env escript
%% -*- erlang -*-
%% Monitoring a dead pid: one DOWN with noproc at once; the monitor is then gone.
-include("common.hrl").

scenario(_Main) ->
    {D, _} = spawn_monitor(fun() -> exit(gone) end),
    role(D, "d"),
    exited(D),
    M = monitor(process, D),
    receive {'DOWN', M, process, D, R} -> say("main got DOWN d ~s", [r(R)])
    after ?WAIT -> stuck("DOWN noproc") end,
    receive {'DOWN', _, _, _, R2} -> say("another DOWN ~s", [r(R2)]) after ?QUIET -> say("no other DOWN", []) end,
    say("demonitor after its DOWN: ~p", [demonitor(M, [info])]).
