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
    process_flag(trap_exit, true),
    M = spawn_link(fun() ->
        spawn_link(fun() -> exit(kill) end),
        receive never -> ok end
    end),
    receive {'EXIT', M, R} -> say("middle exited: ~s", [r(R)]) end.
