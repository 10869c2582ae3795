#!/usr/bin/env escript
%% -*- erlang -*-
%% A trapping process gets every link's exit as an EXIT message: normal, an error, shutdown.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() -> child(Main, "a", false) end),
    B = spawn_link(fun() -> child(Main, "b", false) end),
    C = spawn_link(fun() -> child(Main, "c", false) end),
    [started(R) || R <- ["a", "b", "c"]],
    A ! {exit_with, normal},
    B ! {exit_with, boom},
    C ! {exit_with, shutdown},
    got_exit(A),
    got_exit(B),
    got_exit(C),
    alive([Main, A, B, C]).
