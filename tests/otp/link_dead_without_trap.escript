#!/usr/bin/env escript
%% -*- erlang -*-
%% Linking to a dead pid without trapping exits: the caller a exits with noproc (Erlang's link/1 raises noproc), and a's own links see noproc.
-include("common.hrl").

scenario(Main) ->
    {D, _} = spawn_monitor(fun() -> ok end),
    role(D, "d"),
    exited(D),
    {A, _} = spawn_monitor(fun() ->
        spawn_link(fun() -> child(Main, "b", false) end),
        spawn_link(fun() -> child(Main, "c", true) end),
        child(Main, "a", false)
    end),
    role(A, "a"),
    B = started("b"),
    C = started("c"),
    started("a"),
    monitor(process, B),
    A ! {link, D},
    exited(A),
    receive {ack, A} -> say("a carried on after linking to a dead pid", []) after 0 -> ok end,
    exited(B),
    saw(C),
    alive([A, B, C]).
