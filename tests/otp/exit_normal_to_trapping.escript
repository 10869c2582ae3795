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
    Self = self(),
    A = spawn(fun() ->
        process_flag(trap_exit, true),
        Self ! ready,
        receive {'EXIT', From, R} -> Self ! {got, From =:= Self, r(R)} end
    end),
    receive ready -> ok end,
    exit(A, normal),
    receive {got, FromDriver, R} -> say("a got EXIT from driver ~p: ~s", [FromDriver, R]) end.
