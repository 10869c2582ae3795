#!/usr/bin/env escript
%% -*- erlang -*-
%% Intensity 2 in 5 s: b is killed twice and restarted each time; the third kill makes the
%% supervisor stop the other children, last started first (they trap exits and say so), and
%% exit with shutdown.
-export([init/1, start_worker/2]).
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link(?MODULE, Main),
    Ref = monitor(process, Sup),
    lists:foreach(fun(N) ->
        {b, B} = lists:keyfind(b, 1, children(Sup)),
        kill(B),
        say("kill ~w: supervisor alive ~w", [N, is_process_alive(Sup) andalso children(Sup) =/= []])
    end, [1, 2]),
    {b, B} = lists:keyfind(b, 1, children(Sup)),
    kill(B),
    stopped(),
    stopped(),
    receive {'DOWN', Ref, process, Sup, Reason} -> say("supervisor exited ~s", [r(Reason)])
    after ?WAIT -> stuck("the supervisor to exit")
    end.

init(Main) ->
    {ok, {#{strategy => one_for_one, intensity => 2, period => 5},
          [spec(a, Main), spec(b, Main), spec(c, Main)]}}.

spec(Id, Main) ->
    #{id => Id, start => {?MODULE, start_worker, [Id, Main]}, shutdown => 5000}.

start_worker(Id, Main) ->
    Sup = self(),
    {ok, spawn_link(fun() ->
        process_flag(trap_exit, true),
        receive {'EXIT', Sup, R} -> Main ! {stopped, Id}, exit(R) end
    end)}.

kill(Pid) ->
    Ref = monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', Ref, process, Pid, _} -> ok after ?WAIT -> stuck("b to die") end.

stopped() ->
    receive {stopped, Id} -> say("stopped ~s", [Id]) after ?WAIT -> stuck("a child to stop") end.

children(Sup) ->
    lists:sort([{Id, P} || {Id, P, _, _} <- supervisor:which_children(Sup)]).
