#!/usr/bin/env escript
%% -*- erlang -*-
%% A process that exits itself with kill (exit(kill)): its links see kill, which is trappable; a non-trapping link dies with kill, not killed.
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
    A ! {exit_with, kill},
    got_exit(A),
    exited(A),
    exited(B),
    saw(C),
    alive([A, B, C]).
