#!/usr/bin/env escript
%% -*- erlang -*-
%% A crash travels down a chain of links: c crashes, b and a die with its reason, main (trapping) gets the EXIT from a.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() ->
        spawn_link(fun() ->
            spawn_link(fun() -> child(Main, "c", false) end),
            child(Main, "b", false)
        end),
        child(Main, "a", false)
    end),
    C = started("c"),
    B = started("b"),
    started("a"),
    [monitor(process, P) || P <- [A, B, C]],
    C ! {exit_with, boom},
    exited(C),
    exited(B),
    exited(A),
    got_exit(A),
    alive([A, B, C]).
