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
    B = spawn_link(fun() -> receive crash -> exit(boom) end end),
    unlink(B),
    M = monitor(process, B),
    B ! crash,
    receive {'DOWN', M, process, B, R} -> say("b down: ~s", [r(R)]) end,
    say("driver alive: ~p", [true]).
