#!/usr/bin/env escript
%% -*- erlang -*-
%% is_process_alive(P) sees every signal the caller sent P before it (OTP guarantees this, to wait for a kill): right after exit(P, kill) or a fatal exit(P, boom), P is not alive; after an ignored or trapped one, it is.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", true) end),
    {C, _} = spawn_monitor(fun() -> child(Main, "c", false) end),
    {D, _} = spawn_monitor(fun() -> child(Main, "d", false) end),
    {E, _} = spawn_monitor(fun() -> child(Main, "e", true) end),
    [started(R) || R <- ["a", "b", "c", "d", "e"]],
    exit(A, kill),
    exit(B, kill),
    exit(C, boom),
    exit(D, normal),
    exit(E, boom),
    alive([A, B, C, D, E]),
    exited(A),
    exited(B),
    exited(C),
    saw(E).
