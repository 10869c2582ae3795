#!/usr/bin/env escript
%% -*- erlang -*-
%% Every strategy x every restart type x the reasons normal, shutdown, {shutdown,x}, an error
%% and kill: supervisor children a, b (of that type) and c; b exits with the reason (by itself,
%% or killed for kill); which of a, b, c are then the same, restarted, stopped or removed.
-export([init/1, start_worker/1]).
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    [combo(Main, S, T, R) || S <- [one_for_one, one_for_all, rest_for_one],
                             T <- [permanent, transient, temporary],
                             R <- [normal, shutdown, {shutdown, x}, boom, kill]],
    ok.

combo(_Main, Strategy, Type, Reason) ->
    {ok, Sup} = supervisor:start_link(?MODULE, {Strategy, Type}),
    Before = children(Sup),
    {b, B} = lists:keyfind(b, 1, Before),
    crash(B, Reason),
    After = children(Sup),
    say("~s ~s ~s: ~s", [Strategy, Type, r(Reason), describe(Before, After)]),
    Ref = monitor(process, Sup),
    unlink(Sup),
    exit(Sup, shutdown),
    receive {'DOWN', Ref, process, Sup, _} -> ok after ?WAIT -> stuck("the supervisor to stop") end.

init({Strategy, Type}) ->
    {ok, {#{strategy => Strategy, intensity => 10, period => 5},
          [spec(a, permanent), spec(b, Type), spec(c, permanent)]}}.

spec(Id, Type) ->
    #{id => Id, start => {?MODULE, start_worker, [Id]}, restart => Type, shutdown => brutal_kill}.

start_worker(_Id) ->
    {ok, spawn_link(fun() -> receive {exit_with, R} -> exit(R) end end)}.

crash(Pid, Reason) ->
    Ref = monitor(process, Pid),
    case Reason of
        kill -> exit(Pid, kill);
        _ -> Pid ! {exit_with, Reason}
    end,
    receive {'DOWN', Ref, process, Pid, _} -> ok after ?WAIT -> stuck("b to exit") end.

children(Sup) ->
    lists:sort([{Id, P} || {Id, P, _, _} <- supervisor:which_children(Sup)]).

describe(Before, After) ->
    string:join([state(Id, Before, After) || {Id, _} <- Before], " ").

state(Id, Before, After) ->
    {Id, Old} = lists:keyfind(Id, 1, Before),
    S = case lists:keyfind(Id, 1, After) of
        false -> "removed";
        {Id, undefined} -> "stopped";
        {Id, Old} -> "same";
        {Id, _} -> "restarted"
    end,
    atom_to_list(Id) ++ "=" ++ S.
