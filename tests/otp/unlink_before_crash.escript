#!/usr/bin/env escript
%% -*- erlang -*-
%% After unlink, a crash of the other side does nothing: main (trapping) gets no EXIT, non-trapping b (linked twice, unlinked once: links are not counted) lives.
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", false) end),
    started("a"),
    started("b"),
    monitor(process, A),
    command(B, {link, A}),
    command(B, {link, A}),
    command(B, {unlink, A}),
    unlink(A),
    A ! {exit_with, boom},
    exited(A),
    receive {'EXIT', A, R} -> say("main got EXIT from a reason ~s", [r(R)]) after ?QUIET -> say("no EXIT from a", []) end,
    ping(B),
    alive([A, B]),
    B ! stop,
    exited(B).
