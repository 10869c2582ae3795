#!/usr/bin/env escript
%% -*- erlang -*-
%% Linking to a dead pid while trapping exits: one EXIT with reason noproc, as a message.
-include("common.hrl").

scenario(_Main) ->
    {D, _} = spawn_monitor(fun() -> ok end),
    role(D, "d"),
    exited(D),
    process_flag(trap_exit, true),
    link(D),
    got_exit(D),
    receive {'EXIT', _, R} -> say("another EXIT ~s", [r(R)]) after ?QUIET -> say("no other EXIT", []) end,
    alive([self(), D]).
