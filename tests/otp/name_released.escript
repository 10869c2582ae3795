#!/usr/bin/env escript
%% -*- erlang -*-
%% A registered name is taken while its process lives and released when it exits (normally or killed).
-include("common.hrl").

scenario(Main) ->
    {A, _} = spawn_monitor(fun() -> child(Main, "a", false) end),
    {B, _} = spawn_monitor(fun() -> child(Main, "b", false) end),
    started("a"),
    started("b"),
    register_as(A, svc),
    whereis_svc(),
    register_as(A, svc),
    register_as(A, other),
    register_as(B, svc),
    A ! stop,
    exited(A),
    whereis_svc(),
    register_as(B, svc),
    whereis_svc(),
    exit(B, kill),
    exited(B),
    whereis_svc().

register_as(P, Name) ->
    P ! {register, Name},
    receive {registered, P, Result} -> say("~s register ~s: ~p", [name(P), Name, Result])
    after ?WAIT -> stuck("register") end.

whereis_svc() ->
    case whereis(svc) of
        undefined -> say("whereis svc: undefined", []);
        P -> say("whereis svc: ~s", [name(P)])
    end.
