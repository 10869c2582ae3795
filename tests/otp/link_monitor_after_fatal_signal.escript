#!/usr/bin/env escript
%% -*- erlang -*-
%% A link or monitor sent right after a fatal exit signal to the same process arrives after it (signals from one sender keep their order), so it finds the process dead: noproc, not the reason it died with.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn(fun() -> child(Main, "a", false) end),
    B = spawn(fun() -> child(Main, "b", false) end),
    C = spawn(fun() -> child(Main, "c", false) end),
    D = spawn(fun() -> child(Main, "d", true) end),
    [started(R) || R <- ["a", "b", "c", "d"]],
    exit(A, kill),
    link(A),
    got_exit(A),
    exit(B, kill),
    down(monitor(process, B)),
    exit(C, boom),
    down(monitor(process, C)),
    exit(D, kill),
    link(D),
    got_exit(D).

down(M) ->
    receive {'DOWN', M, process, P, R} -> say("main got DOWN ~s ~s", [name(P), r(R)])
    after ?WAIT -> stuck("a DOWN") end.
