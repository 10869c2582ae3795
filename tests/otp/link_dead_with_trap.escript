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
    process_flag(trap_exit, true),
    link(D),
    receive {'EXIT', D, R} -> say("got EXIT from dead: ~s", [r(R)]) end.
