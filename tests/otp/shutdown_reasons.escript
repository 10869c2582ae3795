#!/usr/bin/env escript
%% -*- erlang -*-
%% {shutdown, restart} and shutdown are reasons like any other for links: a trapping link gets them, a non-trapping one dies with them.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() ->
        spawn_link(fun() -> child(Main, "b", false) end),
        spawn_link(fun() -> child(Main, "c", true) end),
        child(Main, "a", false)
    end),
    B = started("b"),
    C = started("c"),
    started("a"),
    [monitor(process, P) || P <- [A, B, C]],
    A ! {exit_with, {shutdown, restart}},
    got_exit(A),
    exited(A),
    exited(B),
    saw(C),
    {D, _} = spawn_monitor(fun() ->
        spawn_link(fun() -> child(Main, "e", false) end),
        child(Main, "d", false)
    end),
    role(D, "d"),
    E = started("e"),
    started("d"),
    monitor(process, E),
    D ! {exit_with, shutdown},
    exited(D),
    exited(E),
    alive([A, B, C, D, E]).
