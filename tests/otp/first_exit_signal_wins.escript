#!/usr/bin/env escript
%% -*- erlang -*-
%% Of two fatal exit signals to a non-trapping process, the first one sent decides its reason; a normal one before does nothing.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", false) end),
    {C, _} = spawn_monitor(fun() -> child(Main, "c", false) end),
    [started(R) || R <- ["a", "b", "c"]],
    exit(A, boom),
    exit(A, kill),
    exit(B, kill),
    exit(B, boom),
    exit(C, normal),
    exit(C, shutdown),
    exit(C, boom),
    exited(A),
    exited(B),
    exited(C).
