//! Conversation actors: the liminal test cases, each crash policy, and regression tests for
//! the original's defects (a timed-out receive that kept its waiter, an unenforced
//! conversation timeout, stale exit signals taken for a participant's, state left behind).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use baobab::conversation::{
    Blocking, ChannelMode, ConversationConfig, ConversationError, ConversationHandle,
    ConversationSupervisor, CrashPolicy, Envelope, LogEntry, ParticipantBehaviour,
    ParticipantRequest, Phase,
};
use baobab::{Ctx, ExitReason, Message, Pid, Runtime};
use common::{SAFETY, exit_of, runtime};

const LONG: Duration = Duration::from_secs(60);

/// Replies `echo:<payload>`; panics on `crash`; answers nothing to `silent`; sleeps (on the
/// blocking pool) on `slow`.
fn echo() -> Arc<dyn ParticipantBehaviour> {
    Arc::new(|request: &Envelope| match request.text() {
        Some("crash") => panic!("asked to crash"),
        Some("silent") => None,
        Some(text) => Some(request.reply("echo.v1", format!("echo:{text}"))),
        None => None,
    })
}

/// Like `echo`, with its name in the reply.
fn named(name: &'static str) -> Arc<dyn ParticipantBehaviour> {
    Arc::new(move |request: &Envelope| match request.text() {
        Some("crash") => panic!("{name} asked to crash"),
        Some(text) => Some(request.reply("echo.v1", format!("{name}:{text}"))),
        None => None,
    })
}

/// Replies after `delay`, on the blocking pool.
fn slow(delay: Duration) -> Arc<dyn ParticipantBehaviour> {
    Arc::new(Blocking(move |request: &Envelope| {
        std::thread::sleep(delay);
        Some(request.reply("slow.v1", request.payload.clone()))
    }))
}

/// Answers `text` only once the gate is opened (a send on the returned sender); until then it
/// holds the request, on the blocking pool. Dropping the sender opens it for good.
fn gated() -> (Arc<dyn ParticipantBehaviour>, mpsc::Sender<()>) {
    let (open, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let behaviour = Blocking(move |request: &Envelope| {
        let _ = gate.lock().unwrap().recv();
        Some(request.reply("gated.v1", request.payload.clone()))
    });
    (Arc::new(behaviour), open)
}

/// A runtime on a clock the test moves by hand.
fn manual_runtime() -> (Runtime, baobab::ManualClock) {
    let clock = baobab::ManualClock::new();
    let rt = Runtime::builder()
        .threads(2)
        .clock(baobab::Clock::manual(&clock))
        .build();
    (rt, clock)
}

fn msg(text: &str) -> Envelope {
    Envelope::new("test.v1", text.to_string())
}

fn text(reply: Result<Envelope, ConversationError>) -> String {
    reply.expect("a reply").text().unwrap().to_string()
}

fn one(
    sup: &ConversationSupervisor,
    behaviour: Arc<dyn ParticipantBehaviour>,
    policy: CrashPolicy,
) -> (ConversationHandle, Pid) {
    sup.spawn_with_participant(behaviour, None, ChannelMode::Ephemeral, policy)
        .unwrap()
}

/// Polls `condition` until it holds (or fails the test after `SAFETY`).
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < SAFETY, "not within {SAFETY:?}: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` on a thread and returns its result, failing the test if it takes longer than
/// `SAFETY` (a receive that should return at once must not hang the suite).
fn within_safety<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> (T, Duration) {
    let (tx, rx) = mpsc::channel();
    let start = Instant::now();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    let value = rx
        .recv_timeout(SAFETY)
        .expect("returned within the safety net");
    (value, start.elapsed())
}

// ---- the liminal test cases ------------------------------------------------------------

#[test]
fn a_conversation_is_spawned_linked_to_its_participant_and_queryable() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);

    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Created);
    let pid = conversation.pid().unwrap();
    assert_eq!(state.pid, Some(pid));
    assert_eq!(state.participants.len(), 1);
    assert_eq!(state.participants[0].pid, participant);
    assert!(state.participants[0].alive && state.participants[0].owned);

    let info = rt.handle().process_info(pid).unwrap();
    assert!(info.trap_exit, "the conversation traps exits");
    assert!(info.links.contains(&participant));
    assert_eq!(info.parent, sup.pid(), "spawned by its supervisor");
    let participant_info = rt.handle().process_info(participant).unwrap();
    assert!(participant_info.links.contains(&pid));
    assert_eq!(sup.open_conversations(), 1);
    sup.shutdown();
}

#[test]
fn a_conversation_goes_created_active_closed() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let pid = conversation.pid().unwrap();
    assert_eq!(conversation.query_state().phase, Phase::Created);

    let request = msg("hello");
    let request_id = conversation.send(request.clone()).unwrap();
    assert_eq!(conversation.query_state().phase, Phase::Active);
    let reply = conversation.receive_timeout(SAFETY).unwrap();
    assert_eq!(reply.text(), Some("echo:hello"));
    assert_eq!(reply.causal.unwrap().parent_id, request_id);

    let watch = rt.handle().watch(pid);
    assert_eq!(conversation.close().unwrap(), Vec::<Envelope>::new());
    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Closed);
    assert_eq!(state.pid, None);
    assert!(matches!(&state.log[0], LogEntry::Sent { to, envelope, .. }
        if *to == participant && envelope.message_id == request.message_id));
    assert!(matches!(&state.log[1], LogEntry::Received { from, .. } if *from == participant));
    // The conversation and the participant it owned are gone, and forgotten.
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Normal));
    assert!(!rt.handle().is_alive(participant));
    assert_eq!(sup.open_conversations(), 0);
    sup.shutdown();
}

#[test]
fn a_participant_death_is_a_trapped_exit_that_fails_the_conversation_without_a_timeout() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let waiting = conversation.clone();
    let receiver = std::thread::spawn(move || {
        let start = Instant::now();
        (waiting.receive_timeout(LONG), start.elapsed())
    });
    eventually("the receive waits", || {
        conversation.query_state().waiting_receives == 1
    });
    rt.handle().exit(participant, ExitReason::Kill);
    let (result, waited) = receiver.join().unwrap();
    assert_eq!(
        result,
        Err(ConversationError::ParticipantCrashed {
            participant,
            reason: ExitReason::Killed
        })
    );
    assert!(
        waited < SAFETY,
        "returned at once, not after its timeout: {waited:?}"
    );
    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Failed);
    assert_eq!(state.waiting_receives, 0);
    assert!(!state.participants[0].alive);
    assert_eq!(state.participants[0].reason, Some(ExitReason::Killed));
    assert!(state.participants[0].exited_at.is_some());
    assert!(
        state
            .log
            .iter()
            .any(|e| matches!(e, LogEntry::ParticipantCrashed { pid, .. } if *pid == participant))
    );
    sup.shutdown();
}

#[test]
fn an_exit_notification_for_an_already_dead_participant_fires_at_once() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    // Registered before the death: fired by it.
    let before = conversation.on_participant_exit(participant).unwrap();
    assert!(before.try_get().is_none());
    rt.handle().exit(participant, ExitReason::Kill);
    let fired = before.wait_timeout(SAFETY).expect("fired");
    assert_eq!(fired.unwrap().reason, ExitReason::Killed);
    // Registered after it: fired at once, with the same exit.
    let after = conversation.on_participant_exit(participant).unwrap();
    let exit = after.try_get().expect("fired at once").unwrap();
    assert_eq!(exit.participant, participant);
    assert_eq!(exit.reason, ExitReason::Killed);
    // Not a participant: a clear error.
    let stranger = sup.pid();
    assert_eq!(
        conversation.on_participant_exit(stranger).unwrap_err(),
        ConversationError::NotParticipant(stranger)
    );
    sup.shutdown();
}

#[test]
fn restarting_one_conversation_leaves_the_others_untouched_and_keeps_its_state() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let conversations: Vec<_> = (0..3)
        .map(|_| one(&sup, echo(), CrashPolicy::Fail))
        .collect();
    for (conversation, _) in &conversations {
        assert_eq!(text(conversation.ask(msg("before"), SAFETY)), "echo:before");
    }
    let pids: Vec<Pid> = conversations
        .iter()
        .map(|(c, _)| c.pid().unwrap())
        .collect();
    // A reply waits in the crashing one, and a receiver waits on another reply.
    let (victim, victim_participant) = &conversations[1];
    victim.send(msg("queued")).unwrap();
    eventually("the reply is queued", || {
        victim.query_state().pending_replies == 1
    });

    let watch = rt.handle().watch(pids[1]);
    rt.handle().exit(pids[1], ExitReason::Kill);
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Killed));
    eventually("the conversation is restarted", || {
        victim.pid().is_ok_and(|pid| pid != pids[1])
    });

    let state = victim.query_state();
    assert_eq!(state.restarts, 1);
    assert_eq!(state.phase, Phase::Active);
    assert!(
        state.participants[0].alive,
        "its participant outlived the crash"
    );
    assert!(matches!(state.log.last(), Some(LogEntry::Restarted { .. })));
    assert_eq!(text(victim.receive_timeout(SAFETY)), "echo:queued");
    assert_eq!(text(victim.ask(msg("after"), SAFETY)), "echo:after");
    let new_pid = victim.pid().unwrap();
    assert!(
        rt.handle()
            .process_info(new_pid)
            .unwrap()
            .links
            .contains(victim_participant)
    );
    for (index, (conversation, _)) in conversations.iter().enumerate() {
        if index != 1 {
            assert_eq!(conversation.pid().unwrap(), pids[index]);
            assert_eq!(conversation.query_state().restarts, 0);
            assert_eq!(text(conversation.ask(msg("after"), SAFETY)), "echo:after");
        }
    }
    sup.shutdown();
}

#[test]
fn ask_returns_the_participants_reply_to_its_own_request() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(&sup, echo(), CrashPolicy::Fail);
    // A reply to a plain send is waiting; ask takes the reply to its own request, not that one.
    conversation.send(msg("first")).unwrap();
    eventually("the first reply is queued", || {
        conversation.query_state().pending_replies == 1
    });
    let request = msg("second");
    let reply = conversation.ask(request.clone(), SAFETY).unwrap();
    assert_eq!(reply.text(), Some("echo:second"));
    assert_eq!(reply.causal.unwrap().parent_id, request.message_id);
    assert_eq!(text(conversation.receive_timeout(SAFETY)), "echo:first");
    sup.shutdown();
}

#[test]
fn ask_times_out_when_no_reply_comes() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(&sup, echo(), CrashPolicy::Fail);
    let start = Instant::now();
    assert_eq!(
        conversation.ask(msg("silent"), Duration::from_millis(30)),
        Err(ConversationError::ReceiveTimeout)
    );
    assert!(start.elapsed() >= Duration::from_millis(30));
    // The conversation goes on.
    assert_eq!(conversation.query_state().phase, Phase::Active);
    assert_eq!(text(conversation.ask(msg("again"), SAFETY)), "echo:again");
    sup.shutdown();
}

#[test]
fn ask_reports_a_crash_before_the_reply() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let (result, waited) = within_safety(move || conversation.ask(msg("crash"), LONG));
    match result {
        Err(ConversationError::ParticipantCrashed {
            participant: p,
            reason: ExitReason::Panic(message),
        }) => {
            assert_eq!(p, participant);
            assert!(message.contains("asked to crash"));
        }
        other => panic!("expected a crash, got {other:?}"),
    }
    assert!(waited < SAFETY);
    sup.shutdown();
}

// ---- defects of the original -----------------------------------------------------------

#[test]
fn a_timed_out_receive_withdraws_so_the_next_receive_gets_the_reply() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(&sup, slow(Duration::from_millis(100)), CrashPolicy::Fail);
    conversation.send(msg("late")).unwrap();
    assert_eq!(
        conversation.receive_timeout(Duration::from_millis(5)),
        Err(ConversationError::ReceiveTimeout)
    );
    // The reply comes after the timed-out receive gave up: it is not lost with it.
    let reply = conversation.receive_timeout(SAFETY).unwrap();
    assert_eq!(reply.text(), Some("late"));
    assert_eq!(conversation.query_state().pending_replies, 0);
    sup.shutdown();
}

#[test]
fn a_dropped_receive_in_a_process_withdraws_too() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (behaviour, open) = gated();
    let (conversation, _) = one(&sup, behaviour, CrashPolicy::Fail);
    let inside = conversation.clone();
    let reply = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            inside.send(msg("late")).unwrap();
            // Times out on the runtime clock, then the future is gone.
            let first = inside
                .receive_in(&mut ctx, Some(Duration::from_millis(5)))
                .await;
            assert_eq!(first, Err(ConversationError::ReceiveTimeout));
            {
                // Polled once (it registers a waiter), then dropped mid-wait.
                let mut pending = std::pin::pin!(inside.receive_in(&mut ctx, None));
                std::future::poll_fn(|cx| {
                    assert!(pending.as_mut().poll(cx).is_pending());
                    std::task::Poll::Ready(())
                })
                .await;
                assert_eq!(inside.query_state().waiting_receives, 1);
            }
            assert_eq!(inside.query_state().waiting_receives, 0, "withdrawn");
            open.send(()).unwrap();
            inside.receive_in(&mut ctx, Some(SAFETY)).await
        })
        .unwrap();
    assert_eq!(reply.unwrap().text(), Some("late"));
    sup.shutdown();
}

#[test]
fn the_conversation_timeout_fails_it_and_ends_pending_receives_at_once() {
    let (rt, clock) = manual_runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = sup
        .spawn_with_participant(
            echo(),
            Some(Duration::from_secs(30)),
            ChannelMode::Ephemeral,
            CrashPolicy::Fail,
        )
        .unwrap();
    let pid = conversation.pid().unwrap();
    let watch = rt.handle().watch(pid);
    let participant_watch = rt.handle().watch(participant);
    conversation.send(msg("silent")).unwrap();
    // A receive with no timeout of its own: only the conversation's ends it.
    let waiting = conversation.clone();
    let receiver = std::thread::spawn(move || waiting.receive());
    eventually("the receive waits", || {
        conversation.query_state().waiting_receives == 1
    });
    clock.advance(Duration::from_secs(30));
    let (result, _) = within_safety(move || receiver.join().unwrap());
    assert_eq!(result, Err(ConversationError::ConversationTimeout));
    assert_eq!(conversation.query_state().phase, Phase::Failed);
    assert_eq!(
        conversation.send(msg("more")),
        Err(ConversationError::ConversationTimeout)
    );
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Normal));
    assert_eq!(
        participant_watch.wait_timeout(SAFETY),
        Some(ExitReason::Shutdown)
    );
    assert_eq!(sup.open_conversations(), 0);
    sup.shutdown();
}

#[test]
fn the_conversation_timeout_runs_on_the_runtime_clock() {
    let clock = baobab::ManualClock::new();
    let rt = Runtime::builder()
        .threads(2)
        .clock(baobab::Clock::manual(&clock))
        .build();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = sup
        .spawn_with_participant(
            echo(),
            Some(Duration::from_secs(3600)),
            ChannelMode::Ephemeral,
            CrashPolicy::Fail,
        )
        .unwrap();
    assert_eq!(text(conversation.ask(msg("hi"), SAFETY)), "echo:hi");
    clock.advance(Duration::from_secs(3599));
    assert_eq!(text(conversation.ask(msg("still"), SAFETY)), "echo:still");
    clock.advance(Duration::from_secs(1));
    eventually("the conversation timed out", || {
        conversation.query_state().phase == Phase::Failed
    });
    assert_eq!(
        conversation.query_state().failure,
        Some(ConversationError::ConversationTimeout)
    );
    sup.shutdown();
}

#[test]
fn a_timeout_left_over_from_before_a_restart_is_still_enforced() {
    let (rt, clock) = manual_runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = sup
        .spawn_with_participant(
            echo(),
            Some(Duration::from_secs(10)),
            ChannelMode::Ephemeral,
            CrashPolicy::Fail,
        )
        .unwrap();
    clock.advance(Duration::from_secs(6));
    let first = conversation.pid().unwrap();
    rt.handle().exit(first, ExitReason::Kill);
    eventually("restarted", || conversation.query_state().restarts == 1);
    assert_eq!(text(conversation.ask(msg("on"), SAFETY)), "echo:on");
    // The restart kept the deadline 10 s after the spawn, not 10 s after the restart.
    clock.advance(Duration::from_secs(4));
    eventually("timed out", || {
        conversation.query_state().phase == Phase::Failed
    });
    assert_eq!(
        conversation.query_state().failure,
        Some(ConversationError::ConversationTimeout)
    );
    sup.shutdown();
}

#[test]
fn an_exit_signal_from_a_stranger_is_ignored() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let pid = conversation.pid().unwrap();
    // A trapped exit signal from a process that is no participant: not a participant crash.
    rt.block_on(move |ctx: Ctx<()>| async move {
        ctx.exit(pid, ExitReason::error("impostor"));
    })
    .unwrap();
    assert_eq!(
        text(conversation.ask(msg("still here"), SAFETY)),
        "echo:still here"
    );
    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Active);
    assert!(state.participants[0].alive);
    assert!(rt.handle().is_alive(participant));
    sup.shutdown();
}

#[test]
fn an_exit_signal_from_a_process_reusing_a_dead_participants_slot_is_ignored() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participants) = sup
        .spawn_with_participants(
            vec![named("a"), named("b")],
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::RouteToNext,
        )
        .unwrap();
    let (a, b) = (participants[0], participants[1]);
    let pid = conversation.pid().unwrap();
    rt.handle().exit(a, ExitReason::Kill);
    eventually("a's exit is seen", || {
        !conversation.query_state().participants[0].alive
    });
    // Spawn until a process gets a's table slot (a new generation of the same index), and let
    // it send the conversation an exit signal.
    let slot_of = |pid: Pid| pid.to_string().rsplit_once('.').unwrap().0.to_string();
    let mut impostor = None;
    for _ in 0..10_000 {
        let addr = rt
            .handle()
            .spawn(|mut ctx: Ctx<Pid>| async move {
                if let Message::User(target) = ctx.recv().await {
                    ctx.exit(target, ExitReason::error("stale"));
                }
            })
            .unwrap();
        if slot_of(addr.pid()) == slot_of(a) {
            impostor = Some(addr);
            break;
        }
        rt.handle().exit(addr.pid(), ExitReason::Kill);
    }
    let impostor = impostor.expect("a's slot is reused");
    assert_ne!(impostor.pid(), a);
    rt.handle().send(&impostor, pid).unwrap();
    exit_of(rt.handle(), impostor.pid());
    assert_eq!(text(conversation.ask(msg("x"), SAFETY)), "b:x");
    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Active);
    let crashes = state
        .log
        .iter()
        .filter(|e| matches!(e, LogEntry::ParticipantCrashed { .. }))
        .count();
    assert_eq!(crashes, 1, "only a's own exit counted");
    assert!(state.participants[1].alive && rt.handle().is_alive(b));
    sup.shutdown();
}

#[test]
fn a_participant_ignores_the_exit_of_an_earlier_incarnation_of_its_conversation() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    for _ in 0..3 {
        let old = conversation.pid().unwrap();
        // The participant gets the crashed incarnation's exit signal (`killed`): it stays.
        rt.handle().exit(old, ExitReason::Kill);
        eventually("restarted", || conversation.pid().is_ok_and(|p| p != old));
        assert!(rt.handle().is_alive(participant));
        assert_eq!(text(conversation.ask(msg("on"), SAFETY)), "echo:on");
    }
    assert_eq!(conversation.query_state().restarts, 3);
    // A stop (`shutdown`) from any process but the conversation's current one is ignored too.
    rt.block_on(move |ctx: Ctx<()>| async move {
        ctx.exit(participant, ExitReason::Shutdown);
    })
    .unwrap();
    assert_eq!(text(conversation.ask(msg("still"), SAFETY)), "echo:still");
    assert!(rt.handle().is_alive(participant));
    sup.shutdown();
}

#[test]
fn opening_and_closing_100_000_conversations_leaves_nothing_behind() {
    let rt = runtime();
    let handle = rt.handle().clone();
    let sup = ConversationSupervisor::start(&handle).unwrap();
    let processes = handle.snapshot().len();
    let names = handle.registered_names();
    let timers = handle.pending_timers();
    let behaviour = echo();
    for i in 0..100_000 {
        let (conversation, _) = sup
            .spawn_with_participant(
                Arc::clone(&behaviour),
                Some(Duration::from_secs(60)),
                ChannelMode::Ephemeral,
                CrashPolicy::Fail,
            )
            .unwrap();
        if i % 10_000 == 0 {
            assert_eq!(text(conversation.ask(msg("x"), SAFETY)), "echo:x");
        }
        conversation.close().unwrap();
    }
    assert_eq!(sup.open_conversations(), 0);
    eventually("the process table is back to its size", || {
        handle.snapshot().len() == processes
    });
    assert_eq!(handle.registered_names(), names);
    // The dynamic supervisor is linked to its keeper only: no conversation child is left.
    let links = handle.process_info(sup.pid()).unwrap().links;
    assert_eq!(links.len(), 1, "{links:?}");
    // Each conversation's one-minute deadline timer was cancelled when it closed. What may
    // linger are receive-wait timers of processes that slept inside a supervisor call; the
    // timer heap drops those of dead processes whenever its live count doubles past 1,024, so
    // at most that many stay, however many conversations came and went.
    let pending = handle.pending_timers() - timers;
    assert!(
        pending <= 1024,
        "{pending} timers left after 100,000 conversations"
    );
    sup.shutdown();
}

// ---- crash policies --------------------------------------------------------------------

#[test]
fn route_to_next_moves_pending_and_later_requests_to_the_next_participant() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    // a holds its request and never answers it.
    let (a_behaviour, _gate) = gated();
    let (conversation, participants) = sup
        .spawn_with_participants(
            vec![a_behaviour, named("b"), named("c")],
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::RouteToNext,
        )
        .unwrap();
    let (a, b, c) = (participants[0], participants[1], participants[2]);
    // a takes the request, then dies before answering: b answers it.
    let asking = conversation.clone();
    let ask = std::thread::spawn(move || asking.ask(msg("pending"), LONG));
    eventually("a has the request", || {
        conversation.query_state().unanswered == 1
    });
    rt.handle().exit(a, ExitReason::Kill);
    assert_eq!(text(ask.join().unwrap()), "b:pending");
    let state = conversation.query_state();
    assert!(
        state
            .log
            .iter()
            .any(|e| matches!(e, LogEntry::Rerouted { from, to, .. } if *from == a && *to == b))
    );
    assert_eq!(text(conversation.ask(msg("later"), SAFETY)), "b:later");
    // b goes too: c takes over.
    rt.handle().exit(b, ExitReason::Kill);
    eventually("b's exit is seen", || {
        !conversation.query_state().participants[1].alive
    });
    assert_eq!(text(conversation.ask(msg("last"), SAFETY)), "c:last");
    assert!(rt.handle().is_alive(c));
    sup.shutdown();
}

#[test]
fn route_to_next_fails_when_no_participant_is_left() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participants) = sup
        .spawn_with_participants(
            vec![named("a"), named("b")],
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::RouteToNext,
        )
        .unwrap();
    let (result, _) = within_safety(move || {
        let first = conversation.ask(msg("crash"), LONG);
        (first, conversation)
    });
    let (first, conversation) = result;
    // a crashes; the request goes to b, which crashes too: nobody is left.
    assert_eq!(
        first,
        Err(ConversationError::ParticipantCrashed {
            participant: participants[1],
            reason: ExitReason::Panic("b asked to crash".into()),
        })
    );
    assert_eq!(conversation.query_state().phase, Phase::Failed);
    sup.shutdown();
}

#[test]
fn compensate_hands_the_unanswered_requests_to_the_callback_and_goes_on() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    type Seen = Vec<(Pid, Vec<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = Arc::clone(&seen);
    let policy = CrashPolicy::compensate(move |crash| {
        let texts = crash
            .unanswered
            .iter()
            .map(|r| r.text().unwrap().to_string())
            .collect();
        record.lock().unwrap().push((crash.participant, texts));
        crash
            .unanswered
            .iter()
            .map(|request| request.reply("cancelled.v1", "cancelled"))
            .collect()
    });
    // a takes two requests, answers neither, and crashes; b echoes.
    let a = rt
        .handle()
        .spawn(|mut ctx: Ctx<ParticipantRequest>| async move {
            let mut held = Vec::new();
            while held.len() < 2 {
                if let Message::User(request) = ctx.recv().await {
                    held.push(request);
                }
            }
            if held.len() == 2 {
                panic!("a crashed holding {} requests", held.len());
            }
        })
        .unwrap();
    let b = rt
        .handle()
        .spawn(|mut ctx: Ctx<ParticipantRequest>| async move {
            while let Message::User(request) = ctx.recv().await {
                let text = format!("b:{}", request.envelope().text().unwrap());
                let reply = request.envelope().reply("echo.v1", text);
                request.reply(Some(reply));
            }
        })
        .unwrap();
    let conversation = sup
        .spawn(ConversationConfig::new(
            vec![a, b],
            None,
            ChannelMode::Ephemeral,
            policy,
        ))
        .unwrap();
    let first_request = msg("first");
    conversation.send(first_request.clone()).unwrap();
    conversation.send(msg("second")).unwrap();
    let first = conversation.receive_timeout(SAFETY).unwrap();
    let second = conversation.receive_timeout(SAFETY).unwrap();
    assert_eq!(first.text(), Some("cancelled"));
    assert_eq!(first.causal.unwrap().parent_id, first_request.message_id);
    assert_eq!(second.text(), Some("cancelled"));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(a.pid(), vec!["first".to_string(), "second".to_string()])]
    );
    // The rest goes on with b.
    assert_eq!(text(conversation.ask(msg("later"), SAFETY)), "b:later");
    let state = conversation.query_state();
    assert_eq!(state.phase, Phase::Active);
    assert!(state.log.iter().any(
        |e| matches!(e, LogEntry::Compensated { pid, requests, .. } if *pid == a.pid() && requests.len() == 2)
    ));
    sup.shutdown();
}

#[test]
fn compensate_without_a_reply_ends_the_ask_at_once() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participants) = sup
        .spawn_with_participants(
            vec![named("a"), named("b")],
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::compensate(|_| Vec::new()),
        )
        .unwrap();
    let asking = conversation.clone();
    let (result, waited) = within_safety(move || asking.ask(msg("crash"), LONG));
    assert!(
        matches!(result, Err(ConversationError::ParticipantCrashed { participant, .. }) if participant == participants[0])
    );
    assert!(waited < SAFETY);
    assert_eq!(text(conversation.ask(msg("next"), SAFETY)), "b:next");
    sup.shutdown();
}

#[test]
fn a_panicking_compensation_fails_the_conversation_with_its_message() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(
        &sup,
        echo(),
        CrashPolicy::compensate(|_| panic!("cannot compensate")),
    );
    let asking = conversation.clone();
    let (result, _) = within_safety(move || asking.ask(msg("crash"), LONG));
    assert_eq!(
        result,
        Err(ConversationError::CompensationPanicked(
            "cannot compensate".into()
        ))
    );
    assert_eq!(conversation.query_state().phase, Phase::Failed);
    sup.shutdown();
}

// ---- lifecycle, errors and supervision --------------------------------------------------

#[test]
fn a_closed_conversation_refuses_everything_and_leaves_no_process() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let pid = conversation.pid().unwrap();
    conversation.send(msg("unread")).unwrap();
    eventually("the reply is queued", || {
        conversation.query_state().pending_replies == 1
    });
    // Closing loses nothing: the unreceived reply comes back.
    let unreceived = conversation.close().unwrap();
    assert_eq!(unreceived.len(), 1);
    assert_eq!(unreceived[0].text(), Some("echo:unread"));
    let closed = Err(ConversationError::Closed);
    assert_eq!(conversation.send(msg("x")).map(|_| ()), closed.clone());
    assert_eq!(
        conversation.receive_timeout(SAFETY).map(|_| ()),
        closed.clone()
    );
    assert_eq!(
        conversation.ask(msg("x"), SAFETY).map(|_| ()),
        closed.clone()
    );
    assert_eq!(conversation.close().map(|_| ()), closed.clone());
    assert_eq!(conversation.pid().map(|_| ()), closed);
    exit_of(rt.handle(), pid);
    assert!(!rt.handle().is_alive(participant));
    assert_eq!(sup.open_conversations(), 0);
    sup.shutdown();
}

#[test]
fn a_failed_conversation_refuses_everything_with_its_reason() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    rt.handle().exit(participant, ExitReason::Kill);
    eventually("failed", || {
        conversation.query_state().phase == Phase::Failed
    });
    let failed = Err(ConversationError::ParticipantCrashed {
        participant,
        reason: ExitReason::Killed,
    });
    assert_eq!(conversation.send(msg("x")).map(|_| ()), failed.clone());
    assert_eq!(
        conversation.receive_timeout(SAFETY).map(|_| ()),
        failed.clone()
    );
    assert_eq!(conversation.close().map(|_| ()), failed.clone());
    assert_eq!(conversation.pid().map(|_| ()), failed);
    eventually("forgotten", || sup.open_conversations() == 0);
    sup.shutdown();
}

#[test]
fn durable_conversations_and_empty_ones_are_refused_clearly() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let processes = rt.handle().snapshot().len();
    assert_eq!(
        sup.spawn_with_participant(echo(), None, ChannelMode::Durable, CrashPolicy::Fail)
            .unwrap_err(),
        ConversationError::DurableUnsupported
    );
    assert_eq!(
        sup.spawn(ConversationConfig::new(
            Vec::new(),
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::Fail
        ))
        .unwrap_err(),
        ConversationError::NoParticipants
    );
    assert_eq!(
        rt.handle().snapshot().len(),
        processes,
        "nothing was spawned"
    );
    sup.shutdown();
}

#[test]
fn a_user_process_can_be_a_participant() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let upper = rt
        .handle()
        .spawn(|mut ctx: Ctx<ParticipantRequest>| async move {
            while let Message::User(request) = ctx.recv().await {
                let text = request.envelope().text().unwrap_or("").to_uppercase();
                // No causal context of its own: the conversation gives it the request's.
                request.reply(Some(Envelope::new("upper.v1", text)));
            }
        })
        .unwrap();
    let conversation = sup
        .spawn(ConversationConfig::new(
            vec![upper],
            None,
            ChannelMode::Ephemeral,
            CrashPolicy::Fail,
        ))
        .unwrap();
    let request = msg("quiet");
    let reply = conversation.ask(request.clone(), SAFETY).unwrap();
    assert_eq!(reply.text(), Some("QUIET"));
    assert_eq!(reply.causal.unwrap().parent_id, request.message_id);
    assert!(!conversation.query_state().participants[0].owned);
    // Closing unlinks from a process it does not own, and leaves it running.
    conversation.close().unwrap();
    assert!(rt.handle().is_alive(upper.pid()));
    assert!(
        rt.handle()
            .process_info(upper.pid())
            .unwrap()
            .links
            .is_empty()
    );
    sup.shutdown();
}

#[test]
fn dropping_the_last_handle_closes_the_conversation() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, participant) = one(&sup, echo(), CrashPolicy::Fail);
    let clone = conversation.clone();
    drop(conversation);
    assert_eq!(sup.open_conversations(), 1, "a clone still holds it");
    drop(clone);
    exit_of(rt.handle(), participant);
    eventually("closed", || sup.open_conversations() == 0);
    sup.shutdown();
}

#[test]
fn restarts_beyond_the_intensity_stop_the_supervisor_and_fail_what_is_open() {
    let rt = runtime();
    let sup = ConversationSupervisor::builder()
        .intensity(2, Duration::from_secs(60))
        .start(rt.handle())
        .unwrap();
    let (victim, victim_participant) = one(&sup, echo(), CrashPolicy::Fail);
    let (bystander, bystander_participant) = one(&sup, echo(), CrashPolicy::Fail);
    let waiting = bystander.clone();
    let receiver = std::thread::spawn(move || waiting.receive());
    let supervisor_watch = rt.handle().watch(sup.pid());
    let participant_watches = [
        rt.handle().watch(victim_participant),
        rt.handle().watch(bystander_participant),
    ];
    for round in 0..3 {
        let pid = victim.pid().unwrap();
        let watch = rt.handle().watch(pid);
        rt.handle().exit(pid, ExitReason::Kill);
        watch.wait_timeout(SAFETY).expect("killed");
        if round < 2 {
            // Restarted at once by the supervisor, not lazily by the next call.
            eventually("restarted", || victim.query_state().restarts == round + 1);
        }
    }
    assert_eq!(
        supervisor_watch.wait_timeout(SAFETY),
        Some(ExitReason::Shutdown)
    );
    assert_eq!(
        receiver.join().unwrap(),
        Err(ConversationError::SupervisorDown)
    );
    eventually("failed", || victim.query_state().phase == Phase::Failed);
    assert_eq!(bystander.query_state().phase, Phase::Failed);
    assert_eq!(sup.open_conversations(), 0);
    for watch in participant_watches {
        watch
            .wait_timeout(SAFETY)
            .expect("the owned participants stop");
    }
    assert_eq!(
        victim.ask(msg("x"), SAFETY),
        Err(ConversationError::SupervisorDown)
    );
    sup.shutdown();
}

#[test]
fn a_blocking_behaviour_does_not_hold_a_scheduler_thread() {
    let rt = Runtime::builder().threads(1).build();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (slow_one, _) = one(&sup, slow(Duration::from_millis(300)), CrashPolicy::Fail);
    let (fast_one, _) = one(&sup, echo(), CrashPolicy::Fail);
    slow_one.send(msg("slow")).unwrap();
    // With one scheduler thread, the fast conversation answers while the slow one works.
    let start = Instant::now();
    assert_eq!(text(fast_one.ask(msg("fast"), SAFETY)), "echo:fast");
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(text(slow_one.receive_timeout(SAFETY)), "slow");
    sup.shutdown();
}

#[test]
fn ask_in_works_inside_a_process() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(&sup, echo(), CrashPolicy::Fail);
    let conversation_state = conversation.clone();
    let replies = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let mut replies = Vec::new();
            for i in 0..100 {
                let reply = conversation
                    .ask_in(&mut ctx, msg(&i.to_string()), SAFETY)
                    .await
                    .unwrap();
                replies.push(reply.text().unwrap().to_string());
            }
            assert!(conversation.close_in(&mut ctx).await.unwrap().is_empty());
            replies
        })
        .unwrap();
    assert_eq!(replies.len(), 100);
    assert_eq!(replies[99], "echo:99");
    assert_eq!(conversation_state.query_state().phase, Phase::Closed);
    sup.shutdown();
}

#[test]
fn many_threads_asking_at_once_each_get_their_own_reply() {
    let rt = runtime();
    let sup = ConversationSupervisor::start(rt.handle()).unwrap();
    let (conversation, _) = one(&sup, echo(), CrashPolicy::Fail);
    let wrong = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let conversation = conversation.clone();
            let wrong = Arc::clone(&wrong);
            std::thread::spawn(move || {
                for i in 0..500 {
                    let body = format!("{t}-{i}");
                    let reply = conversation.ask(msg(&body), SAFETY).unwrap();
                    if reply.text() != Some(&format!("echo:{body}")) {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
    assert_eq!(conversation.query_state().log.len(), 4 * 500 * 2);
    sup.shutdown();
}

#[test]
fn the_context_log_keeps_the_newest_entries_up_to_its_limit() {
    let rt = runtime();
    let sup = ConversationSupervisor::builder()
        .log_limit(10)
        .start(rt.handle())
        .unwrap();
    let (conversation, _) = one(&sup, echo(), CrashPolicy::Fail);
    for i in 0..20 {
        assert_eq!(
            text(conversation.ask(msg(&i.to_string()), SAFETY)),
            format!("echo:{i}")
        );
    }
    let state = conversation.query_state();
    assert_eq!(state.log.len(), 10);
    assert_eq!(state.log_dropped, 30);
    assert!(
        matches!(&state.log[9], LogEntry::Received { envelope, .. } if envelope.text() == Some("echo:19"))
    );
    sup.shutdown();
}
