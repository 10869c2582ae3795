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
    Self = self(),
    B = spawn_link(fun() -> [Self ! {n, N} || N <- lists:seq(1, 5)], exit(boom) end),
    loop(B).
loop(B) ->
    receive
        {n, N} -> say("message ~p", [N]), loop(B);
        {'EXIT', B, R} -> say("EXIT from b: ~s", [r(R)])
    end.
