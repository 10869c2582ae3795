#!/usr/bin/env escript
%% -*- erlang -*-
%% exit(P, normal) from another process: a non-trapping a ignores it; a trapping b gets it as an EXIT.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", true) end),
    started("a"),
    started("b"),
    exit(A, normal),
    exit(B, normal),
    ping(A),
    saw(B),
    alive([A, B]),
    A ! stop,
    B ! stop,
    exited(A),
    exited(B).
