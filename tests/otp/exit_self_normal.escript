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
    {A, M} = spawn_monitor(fun() -> exit(self(), normal), receive never -> ok end end),
    receive {'DOWN', M, process, A, R} -> say("a exited: ~s", [r(R)]) end.
