#!/usr/bin/env escript
%% -*- erlang -*-
%% A link made with link/1 works both ways: a links to b and crashes, b dies; c links to d and d crashes, c dies.
-include("common.hrl").

scenario(Main) ->
    Ps = [element(1, spawn_monitor(fun() -> child(Main, R, false) end)) || R <- ["a", "b", "c", "d"]],
    [A, B, C, D] = [started(R) || R <- ["a", "b", "c", "d"]],
    command(A, {link_and_notify, B}),
    acked(B),
    A ! {exit_with, boom},
    exited(A),
    exited(B),
    command(C, {link_and_notify, D}),
    acked(D),
    D ! {exit_with, {shutdown, gone}},
    exited(D),
    exited(C),
    alive(Ps).
