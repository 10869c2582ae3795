#!/usr/bin/env escript
%% -*- erlang -*-
%%! +P 2000000
%% The runtime workloads of docs/benchmarks.md on the BEAM: `escript bench.escript WORKLOAD`
%% prints `ns_per_op [bytes_per_process]`, as the Rust side does.
-mode(compile).

env(Name, Default) ->
    case os:getenv(Name) of
        false -> Default;
        Value -> list_to_integer(Value)
    end.

main([Workload]) ->
    Self = self(),
    %% The driver is a fresh process, as in the Rust peers.
    spawn(fun() -> Self ! {result, run(list_to_atom(Workload))} end),
    receive {result, Line} -> io:format("~s~n", [Line]) end.

per(Micros, Ops) -> Micros * 1000 / Ops.

run(spawn) ->
    N = env("SPAWN_N", 1000000),
    Before = erlang:memory(processes),
    {T, Pids} = timer:tc(fun() -> [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)] end),
    Bytes = (erlang:memory(processes) - Before) / N,
    [P ! stop || P <- Pids],
    io_lib:format("~.1f ~.1f", [per(T, N), Bytes]);
run('ping-pong') ->
    N = env("PINGPONG_N", 500000),
    Server = spawn(fun Loop() -> receive {From, X} -> From ! {self(), X + 1}, Loop() end end),
    Me = self(),
    {T, _} = timer:tc(fun() -> pp(Server, Me, N) end),
    io_lib:format("~.1f", [per(T, N)]);
run(ring) ->
    R = env("RING_SIZE", 10000),
    Laps = env("RING_LAPS", 100),
    Hops = R * Laps,
    Me = self(),
    First = lists:foldl(fun(_, Next) -> spawn(fun() -> member(Next, Me) end) end, Me, lists:seq(1, R - 1)),
    {T, _} = timer:tc(fun() -> First ! Hops, lead(First) end),
    io_lib:format("~.1f", [per(T, Hops)]);
run('fan-in') ->
    S = env("FANIN_SENDERS", 1000),
    M = env("FANIN_MESSAGES", 1000),
    Me = self(),
    {T, _} = timer:tc(fun() ->
        [spawn(fun() -> [Me ! X || X <- lists:seq(1, M)] end) || _ <- lists:seq(1, S)],
        drain(S * M)
    end),
    io_lib:format("~.1f", [per(T, S * M)]).

pp(_, _, 0) -> ok;
pp(Server, Me, N) -> Server ! {Me, N}, receive {Server, _} -> pp(Server, Me, N - 1) end.

member(Next, Driver) ->
    receive
        0 -> Next ! 0, ok;
        N -> Next ! N - 1, member(Next, Driver)
    end.

lead(First) ->
    receive
        0 -> ok;
        N -> First ! N - 1, lead(First)
    end.

drain(0) -> ok;
drain(N) -> receive _ -> drain(N - 1) end.
