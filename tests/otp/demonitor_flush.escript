#!/usr/bin/env escript
%% -*- erlang -*-
%% Demonitor: with flush, a DOWN already due (dead pid, or a monitor that fired) never shows; a live monitor removed before the exit sends nothing.
-include("common.hrl").

scenario(Main) ->
    {D, _} = spawn_monitor(fun() -> ok end),
    role(D, "d"),
    exited(D),
    MD = monitor(process, D),
    demonitor(MD, [flush]),
    receive {'DOWN', MD, _, _, _} -> say("DOWN after demonitor flush", []) after ?QUIET -> say("no DOWN after demonitor flush", []) end,
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    started("a"),
    MA = monitor(process, A),
    say("demonitor of a live monitor: ~p", [demonitor(MA, [info])]),
    A ! {exit_with, boom},
    exited(A),
    receive {'DOWN', MA, _, _, _} -> say("DOWN from the removed monitor", []) after ?QUIET -> say("no DOWN from the removed monitor", []) end,
    B = spawn(fun() -> child(Main, "b", false) end),
    started("b"),
    MB1 = monitor(process, B),
    MB2 = monitor(process, B),
    B ! {exit_with, boom},
    receive {'DOWN', MB2, process, B, R} -> say("main got DOWN b ~s (second monitor)", [r(R)])
    after ?WAIT -> stuck("the DOWN of the second monitor") end,
    demonitor(MB1, [flush]),
    receive {'DOWN', MB1, _, _, _} -> say("DOWN after flushing a fired monitor", []) after ?QUIET -> say("no DOWN after flushing a fired monitor", []) end.
