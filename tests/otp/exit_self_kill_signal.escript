#!/usr/bin/env escript
%% -*- erlang -*-
%% exit(self(), kill) is the untrappable signal, even from a trapping process to itself: it dies at once with killed, its links see killed.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() ->
        spawn_link(fun() -> child(Main, "b", false) end),
        spawn_link(fun() -> child(Main, "c", true) end),
        child(Main, "a", true)
    end),
    B = started("b"),
    C = started("c"),
    started("a"),
    [monitor(process, P) || P <- [A, B, C]],
    A ! {exit_to, A, kill},
    got_exit(A),
    exited(A),
    receive {ack, A} -> say("a carried on after exit(self(), kill)", []) after 0 -> ok end,
    exited(B),
    saw(C),
    alive([A, B, C]).
