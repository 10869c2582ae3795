#!/usr/bin/env escript
%% -*- erlang -*-
%% Signals from one sender arrive in the order sent: messages interleaved with exit signals (a, linked, to trapping main), and messages then the DOWN (b, monitored).
-include("common.hrl").

scenario(Main) ->
    process_flag(trap_exit, true),
    A = spawn_link(fun() ->
        receive go -> ok end,
        Main ! {n, 1},
        Main ! {n, 2},
        exit(Main, warn),
        Main ! {n, 3},
        exit(Main, normal),
        Main ! {n, 4},
        exit(boom)
    end),
    role(A, "a"),
    A ! go,
    drain(A, exit),
    {B, _} = spawn_monitor(fun() ->
        receive go -> ok end,
        Main ! {n, 5},
        Main ! {n, 6},
        exit(boom)
    end),
    role(B, "b"),
    B ! go,
    drain(B, down).

%% Prints what arrives from P, in arrival order, until P's exit (EXIT boom or DOWN).
drain(P, Until) ->
    receive
        {n, N} ->
            say("main got message ~p", [N]),
            drain(P, Until);
        {'EXIT', P, R} ->
            say("main got EXIT from ~s reason ~s", [name(P), r(R)]),
            case {Until, R} of
                {exit, boom} -> ok;
                _ -> drain(P, Until)
            end;
        {'DOWN', _, process, P, R} ->
            say("main got DOWN ~s ~s", [name(P), r(R)])
    after ?WAIT -> stuck("the exit of " ++ name(P))
    end.
