#!/usr/bin/env escript
%% -*- erlang -*-
%% exit(self(), R): a non-trapping process exits with R at once (normal included); a trapping one gets an EXIT from itself.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", true) end),
    {C, _} = spawn_monitor(fun() -> child(Main, "c", false) end),
    {D, _} = spawn_monitor(fun() -> child(Main, "d", true) end),
    [started(R) || R <- ["a", "b", "c", "d"]],
    A ! {exit_to, A, normal},
    exited(A),
    receive {ack, A} -> say("a carried on after exit(self(), normal)", []) after 0 -> ok end,
    command(B, {exit_to, B, normal}),
    saw(B),
    C ! {exit_to, C, boom},
    exited(C),
    receive {ack, C} -> say("c carried on after exit(self(), boom)", []) after 0 -> ok end,
    command(D, {exit_to, D, boom}),
    saw(D),
    alive([A, B, C, D]),
    B ! stop,
    D ! stop,
    exited(B),
    exited(D).
