#!/usr/bin/env escript
%% -*- erlang -*-
%% A normal exit is ignored by a non-trapping link: b, linked to a and monitoring it, outlives a's normal exit.
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() ->
        spawn_link(fun() -> child(Main, "b", false) end),
        child(Main, "a", false)
    end),
    role(A, "a"),
    B = started("b"),
    started("a"),
    monitor(process, B),
    command(B, {monitor, A}),
    A ! {exit_with, normal},
    exited(A),
    saw(B),
    alive([A, B]),
    ping(B),
    B ! stop,
    exited(B).
