%% -*- erlang -*-
%% Shared by the differential scenarios in this folder: each `<name>.escript` includes it and
%% defines `scenario(Main)`. `tests/otp/scenarios.rs` mirrors every helper here on baobab, so
%% both sides print the same normalised trace:
%%
%%   a exited boom                      (a DOWN the main process received)
%%   main got EXIT from a reason boom   (a trapped exit the main process received)
%%   b got EXIT from a reason boom      (what child b received and relayed to main)
%%   b got DOWN a noproc
%%   alive: a=false b=true
%%
%% Processes are named by role ("main", "a", "b", ...), never by pid. Reasons are printed as
%% Erlang spells them; `{noproc, Stacktrace}` (what a failed `link/1` raises) prints as
%% `noproc`. Every wait has a deadline, so a missing event prints `timeout waiting for ...`
%% and ends the trace instead of hanging.
-mode(compile).
-compile([nowarn_unused_function]).

%% How long an expected event may take, and how long to wait for one that must not come.
-define(WAIT, 5000).
-define(QUIET, 100).

main(_) ->
    %% Crash reports (a failed link/1 raises an error) would go to stdout, among the trace.
    logger:set_primary_config(level, none),
    role(self(), "main"),
    try
        scenario(self())
    catch
        throw:{stuck, What} -> say("timeout waiting for ~s", [What])
    end.

%% ---- the trace

say(Fmt, Args) -> io:format(Fmt ++ "~n", Args).

r({shutdown, X}) -> "{shutdown," ++ t(X) ++ "}";
r({noproc, _Stacktrace}) -> "noproc";
r(R) when is_atom(R) -> atom_to_list(R);
r(R) -> t(R).

t(X) when is_atom(X) -> atom_to_list(X);
t(X) -> lists:flatten(io_lib:format("~w", [X])).

role(Pid, Name) -> put({role, Pid}, Name), Pid.

name(Pid) ->
    case get({role, Pid}) of
        undefined -> "?";
        Name -> Name
    end.

stuck(What) -> throw({stuck, What}).

%% ---- the main process's side

%% Waits for child `Role` to announce itself; its pid, now named.
started(Role) ->
    receive {started, Role, Pid} -> role(Pid, Role)
    after ?WAIT -> stuck(Role ++ " to start")
    end.

%% Waits for the DOWN of `Pid` (which main monitors) and prints its reason.
exited(Pid) ->
    receive {'DOWN', _, process, Pid, R} -> say("~s exited ~s", [name(Pid), r(R)])
    after ?WAIT -> stuck("DOWN of " ++ name(Pid))
    end.

%% Waits for a trapped exit from `Pid` to main.
got_exit(Pid) ->
    receive {'EXIT', Pid, R} -> say("main got EXIT from ~s reason ~s", [name(Pid), r(R)])
    after ?WAIT -> stuck("EXIT from " ++ name(Pid))
    end.

%% Waits for the next thing child `Pid` relayed.
saw(Pid) ->
    receive
        {saw, Pid, {exit, From, R}} ->
            say("~s got EXIT from ~s reason ~s", [name(Pid), name(From), r(R)]);
        {saw, Pid, {down, Of, R}} ->
            say("~s got DOWN ~s ~s", [name(Pid), name(Of), r(R)])
    after ?WAIT -> stuck("a report from " ++ name(Pid))
    end.

%% Sends child `Pid` a command and waits until it has carried it out.
command(Pid, Command) ->
    Pid ! Command,
    acked(Pid).

acked(Pid) ->
    receive {ack, Pid} -> ok
    after ?WAIT -> stuck(name(Pid) ++ " to acknowledge")
    end.

%% Pings child `Pid`: its answer shows it is alive and has handled all main sent before.
ping(Pid) ->
    Pid ! ping,
    receive {pong, Pid} -> say("~s answered ping", [name(Pid)])
    after ?WAIT -> stuck("pong from " ++ name(Pid))
    end.

alive(Pids) ->
    say("alive: ~s", [lists:join(" ", [[name(P), "=", t(is_process_alive(P))] || P <- Pids])]).

%% ---- a child: traps exits if asked, announces itself, then relays every exit signal and
%% DOWN it receives to main and carries out main's commands, until told to stop (it then
%% exits with reason `done`).

child(Main, Role, Trap) ->
    process_flag(trap_exit, Trap),
    Main ! {started, Role, self()},
    relay(Main).

relay(Main) ->
    receive
        {'EXIT', From, R} -> Main ! {saw, self(), {exit, From, R}};
        {'DOWN', _, process, Of, R} -> Main ! {saw, self(), {down, Of, R}};
        ping -> Main ! {pong, self()};
        stop -> exit(done);
        {exit_with, R} -> exit(R);
        {exit_to, Pid, R} -> exit(Pid, R), Main ! {ack, self()};
        {link, Pid} -> link(Pid), Main ! {ack, self()};
        %% Links to Pid and tells it: its ack shows the link reached it (signals from one
        %% sender arrive in order).
        {link_and_notify, Pid} -> link(Pid), Pid ! linked, Main ! {ack, self()};
        linked -> Main ! {ack, self()};
        {unlink, Pid} -> unlink(Pid), Main ! {ack, self()};
        {monitor, Pid} -> monitor(process, Pid), Main ! {ack, self()};
        {register, Name} ->
            Result = try register(Name, self()) catch error:badarg -> false end,
            Main ! {registered, self(), Result}
    end,
    relay(Main).
