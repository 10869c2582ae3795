#!/usr/bin/env escript
%% -*- erlang -*-
%% A monitor gets exactly one DOWN; two monitors on the same process get one each.
-include("common.hrl").

scenario(Main) ->
    {A, M1} = spawn_monitor(fun() -> child(Main, "a", false) end),
    started("a"),
    M2 = monitor(process, A),
    A ! {exit_with, boom},
    receive {'DOWN', M1, process, A, R1} -> say("main got DOWN a ~s (first monitor)", [r(R1)])
    after ?WAIT -> stuck("the first DOWN") end,
    receive {'DOWN', M2, process, A, R2} -> say("main got DOWN a ~s (second monitor)", [r(R2)])
    after ?WAIT -> stuck("the second DOWN") end,
    receive {'DOWN', _, _, _, R} -> say("another DOWN ~s", [r(R)]) after ?QUIET -> say("no other DOWN", []) end.
