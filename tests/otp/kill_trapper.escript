#!/usr/bin/env escript
%% -*- erlang -*-
%% exit(B, kill) on a trapping process: b dies with killed, and its links see killed (c dies with it, d traps it).
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    B = spawn_link(fun() ->
        spawn_link(fun() -> child(Main, "c", false) end),
        spawn_link(fun() -> child(Main, "d", true) end),
        child(Main, "b", true)
    end),
    C = started("c"),
    D = started("d"),
    started("b"),
    [monitor(process, P) || P <- [B, C, D]],
    exit(B, kill),
    got_exit(B),
    exited(B),
    exited(C),
    saw(D),
    alive([B, C, D]).
