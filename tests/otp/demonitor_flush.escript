#!/usr/bin/env escript
%% -*- erlang -*-
%% A differential scenario: prints the normalised trace that tests/otp_differential.rs
%% compares with baobab's run of the same scenario.
-compile(nowarn_unused_function).
r({shutdown, X}) -> lists:flatten(io_lib:format("{shutdown,~p}", [X]));
r({noproc, _}) -> "noproc";
r(R) when is_atom(R) -> atom_to_list(R).
say(Fmt, Args) -> io:format(Fmt ++ "~n", Args).

main(_) ->
    {D, M} = spawn_monitor(fun() -> ok end),
    receive {'DOWN', M, process, D, _} -> ok end,
    M2 = monitor(process, D),
    demonitor(M2, [flush]),
    receive {'DOWN', M2, _, _, _} -> say("down still queued", []) after 50 -> say("no down after flush", []) end.
