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
    {A, M} = spawn_monitor(fun() -> register(svc, self()), Self ! registered, receive stop -> ok end end),
    receive registered -> ok end,
    say("whereis before: ~p", [whereis(svc) =:= A]),
    A ! stop,
    receive {'DOWN', M, process, A, _} -> ok end,
    say("whereis after: ~p", [whereis(svc)]).
