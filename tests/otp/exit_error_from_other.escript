#!/usr/bin/env escript
%% -*- erlang -*-
%% exit(P, boom) from another process: a non-trapping a dies with boom and handles nothing sent after the signal; a trapping b gets it as an EXIT and lives.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", true) end),
    started("a"),
    started("b"),
    exit(A, boom),
    A ! ping,
    exit(B, boom),
    exited(A),
    receive {pong, A} -> say("a answered a ping sent after the exit signal", []) after 0 -> ok end,
    saw(B),
    alive([A, B]),
    B ! stop,
    exited(B).
