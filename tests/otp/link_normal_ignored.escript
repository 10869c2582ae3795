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
    {A, M} = spawn_monitor(fun() ->
        {B, MB} = spawn_monitor(fun() -> ok end),
        link(B),
        receive {'DOWN', MB, process, B, R} -> Self ! {down, r(R)} end,
        receive go -> exit(finished) end
    end),
    receive {down, R} -> say("a saw b down: ~s", [R]) end,
    A ! go,
    receive {'DOWN', M, process, A, RA} -> say("a exited: ~s", [r(RA)]) end.
