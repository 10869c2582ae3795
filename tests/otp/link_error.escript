#!/usr/bin/env escript
%% -*- erlang -*-
%% Link propagation of an error reason: a crashes with boom; its trapping link b gets the EXIT, its non-trapping link c dies with boom.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() ->
        spawn_link(fun() -> child(Main, "b", true) end),
        spawn_link(fun() -> child(Main, "c", false) end),
        child(Main, "a", false)
    end),
    role(A, "a"),
    B = started("b"),
    C = started("c"),
    started("a"),
    monitor(process, B),
    monitor(process, C),
    A ! {exit_with, boom},
    exited(A),
    saw(B),
    exited(C),
    alive([A, B, C]).
