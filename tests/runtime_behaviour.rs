//! The runtime and process contract (DESIGN.md §2–3): scheduling, panics, the blocking pool,
//! shutdown, determinism, mailboxes, receive, calls, the registry, timers and introspection.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baobab::server::{CallError, ReplyTo, Server, ServerMsg};
use baobab::{
    Behaviour, Clock, Ctx, ExitReason, Handled, MailboxConfig, ManualClock, Message, Overflow,
    RegistryError, Runtime, SendError, SpawnOptions, Status,
};
use common::{SAFETY, exit_of, runtime};

fn manual_runtime(threads: usize) -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .threads(threads)
        .clock(Clock::manual(&clock))
        .build();
    (rt, clock)
}

/// Advances `clock` in small steps until `done` holds (the process under test must first
/// reach its receive; nothing here sleeps for a timer).
fn advance_until(clock: &ManualClock, step: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < SAFETY, "condition never held");
        clock.advance(step);
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------- scheduling

#[test]
fn flooding_process_does_not_starve_a_ping_pong_pair() {
    let rt = Runtime::builder().threads(1).budget(50).build();
    let h = rt.handle().clone();
    // A process that keeps its own mailbox full forever.
    let flood = h
        .spawn(|mut ctx: Ctx<u64>| async move {
            let me = ctx.addr();
            for n in 0..100 {
                ctx.send(&me, n).unwrap();
            }
            while let Message::User(n) = ctx.recv().await {
                ctx.send(&me, n + 1).unwrap();
            }
        })
        .unwrap();
    let rounds = rt.block_on(|mut ctx: Ctx<u32>| async move {
        let me = ctx.addr();
        let echo = ctx
            .spawn(move |mut ctx: Ctx<u32>| async move {
                while let Message::User(n) = ctx.recv().await {
                    ctx.send(&me, n).unwrap();
                }
            })
            .unwrap();
        for n in 0..1000 {
            ctx.send(&echo, n).unwrap();
            assert_eq!(ctx.recv().await, Message::User(n));
        }
        1000
    });
    assert_eq!(rounds, Ok(1000));
    assert!(h.is_alive(flood.pid()), "the flood is still going");
    assert!(h.process_info(flood.pid()).unwrap().reductions > 1000);
}

#[test]
fn panic_in_a_body_becomes_exit_and_the_scheduler_thread_survives() {
    let rt = Runtime::builder().threads(1).build();
    let reasons = rt.block_on(|mut ctx: Ctx<()>| async move {
        let mut reasons = vec![];
        for n in 0..100 {
            ctx.spawn_monitor(move |_c: Ctx<()>| async move {
                let fail = true;
                if fail {
                    panic!("crash {n}");
                }
            })
            .unwrap();
            if let Message::Down(down) = ctx.recv().await {
                reasons.push(down.reason);
            }
        }
        reasons
    });
    let reasons = reasons.unwrap();
    assert_eq!(reasons.len(), 100);
    assert_eq!(reasons[7], ExitReason::Panic("crash 7".into()));
    // The single scheduler thread still runs processes.
    assert_eq!(rt.block_on(|_c: Ctx<()>| async { 42 }), Ok(42));
}

struct Fragile;

impl Behaviour for Fragile {
    type Msg = u32;
    fn handle_message(&mut self, n: u32, _ctx: &mut Ctx<u32>) -> Handled {
        assert!(n != 13, "unlucky {n}");
        Ok(())
    }
}

#[test]
fn panic_in_a_behaviour_callback_becomes_exit_reason_panic() {
    let rt = runtime();
    let h = rt.handle().clone();
    let fragile = h.spawn(Fragile).unwrap();
    let watch = h.watch(fragile.pid());
    h.send(&fragile, 1).unwrap();
    h.send(&fragile, 13).unwrap();
    assert_eq!(
        watch.wait_timeout(SAFETY),
        Some(ExitReason::Panic("unlucky 13".into()))
    );
}

#[test]
fn blocking_work_returns_its_result_to_the_owner() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.blocking(|| {
            std::thread::sleep(Duration::from_millis(5));
            std::thread::current().name().map(str::to_owned)
        })
        .await
    });
    assert_eq!(got, Ok(Some("baobab-blocking".to_owned())));
}

#[test]
fn panic_in_blocking_work_becomes_the_owners_exit() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.blocking(|| -> u32 { panic!("disk on fire") }).await
    });
    assert_eq!(got, Err(ExitReason::Panic("disk on fire".into())));
}

enum Work {
    Start,
    Done(u64),
}

struct Offloader {
    report: Arc<Mutex<Vec<u64>>>,
}

impl Behaviour for Offloader {
    type Msg = Work;
    fn handle_message(&mut self, message: Work, ctx: &mut Ctx<Work>) -> Handled {
        match message {
            Work::Start => ctx.spawn_blocking(|| (1..=10u64).product(), Work::Done),
            Work::Done(n) => {
                self.report.lock().unwrap().push(n);
                return Err(ExitReason::Normal);
            }
        }
        Ok(())
    }
}

#[test]
fn spawn_blocking_sends_the_result_as_a_message() {
    let rt = runtime();
    let h = rt.handle().clone();
    let report = Arc::new(Mutex::new(vec![]));
    let worker = h
        .spawn(Offloader {
            report: Arc::clone(&report),
        })
        .unwrap();
    let watch = h.watch(worker.pid());
    h.send(&worker, Work::Start).unwrap();
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Normal));
    assert_eq!(*report.lock().unwrap(), vec![3_628_800]);
}

#[test]
fn exit_of_the_owner_abandons_blocking_work() {
    let rt = runtime();
    let h = rt.handle().clone();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let finished = Arc::new(Mutex::new(false));
    let flag = Arc::clone(&finished);
    let owner = h
        .spawn(move |mut ctx: Ctx<()>| async move {
            ctx.blocking(move || {
                started_tx.send(()).unwrap();
                released.recv().unwrap();
                *flag.lock().unwrap() = true;
            })
            .await;
            ExitReason::error("should not get here")
        })
        .unwrap();
    let watch = h.watch(owner.pid());
    started_rx.recv_timeout(SAFETY).unwrap();
    h.exit(owner.pid(), ExitReason::Kill);
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Killed));
    release.send(()).unwrap();
    let started = Instant::now();
    while !*finished.lock().unwrap() {
        assert!(started.elapsed() < SAFETY);
        std::thread::yield_now();
    }
}

struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
}

impl Behaviour for Recorder {
    type Msg = ();
    fn init(&mut self, ctx: &mut Ctx<()>) -> Handled {
        ctx.trap_exit(true);
        Ok(())
    }
    fn handle_message(&mut self, (): (), _ctx: &mut Ctx<()>) -> Handled {
        Ok(())
    }
    fn handle_exit(&mut self, _signal: baobab::ExitSignal, _ctx: &mut Ctx<()>) -> Handled {
        Ok(())
    }
    fn terminate(&mut self, reason: &ExitReason, _ctx: &mut Ctx<()>) {
        self.log.lock().unwrap().push(reason.to_string());
    }
}

#[test]
fn shutdown_runs_terminate_callbacks_with_shutdown_even_when_trapping() {
    let rt = runtime();
    let log = Arc::new(Mutex::new(vec![]));
    for _ in 0..3 {
        rt.handle()
            .spawn(Recorder {
                log: Arc::clone(&log),
            })
            .unwrap();
    }
    let h = rt.handle().clone();
    rt.shutdown();
    assert_eq!(*log.lock().unwrap(), vec!["shutdown"; 3]);
    assert_eq!(h.stats().live, 0);
    assert!(h.snapshot().is_empty());
}

#[test]
fn shutdown_joins_and_refuses_new_processes() {
    let rt = runtime();
    let h = rt.handle().clone();
    for _ in 0..100 {
        h.spawn(|mut ctx: Ctx<()>| async move {
            ctx.recv().await;
        })
        .unwrap();
    }
    rt.shutdown();
    assert_eq!(h.stats().live, 0);
    assert_eq!(
        h.spawn(|_c: Ctx<()>| async {}).err(),
        Some(baobab::SpawnError::ShuttingDown)
    );
}

fn interleaving(seed: u64) -> Vec<u32> {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .deterministic(seed)
        .clock(Clock::manual(&clock))
        .build();
    let log = Arc::new(Mutex::new(vec![]));
    let out = Arc::clone(&log);
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        let mut monitors = vec![];
        for id in 0..6u32 {
            let log = Arc::clone(&log);
            let (_, monitor) = ctx
                .spawn_monitor(move |mut ctx: Ctx<()>| async move {
                    for step in 0..5 {
                        log.lock().unwrap().push(id * 10 + step);
                        ctx.yield_now().await;
                    }
                })
                .unwrap();
            monitors.push(monitor);
        }
        for _ in monitors {
            ctx.recv().await;
        }
    })
    .unwrap();
    out.lock().unwrap().clone()
}

#[test]
fn deterministic_mode_replays_the_same_interleaving() {
    let first = interleaving(7);
    assert_eq!(first.len(), 30);
    for _ in 0..5 {
        assert_eq!(interleaving(7), first);
    }
    let others: Vec<Vec<u32>> = (1..20).map(interleaving).collect();
    assert!(
        others.iter().any(|o| *o != first),
        "different seeds give different orders"
    );
}

#[test]
fn scheduler_threads_default_to_available_cores() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(Runtime::new().threads(), cores);
    assert_eq!(Runtime::builder().threads(3).build().threads(), 3);
}

// ---------------------------------------------------------------- mailboxes and receive

#[test]
fn send_to_a_dead_pid_is_dropped_and_counted() {
    let rt = runtime();
    let h = rt.handle().clone();
    let gone = h.spawn(|_c: Ctx<u32>| async {}).unwrap();
    exit_of(&h, gone.pid());
    let before = h.stats().messages_dropped;
    assert_eq!(h.send(&gone, 1), Ok(()));
    assert_eq!(h.stats().messages_dropped, before + 1);
}

/// A burst of sends to one process in one slice is batched (see `process/outbox.rs`): the
/// messages arrive in order, all of them, while the sender waits (the end of its slice
/// delivers them), and before the sender's exit signal.
#[test]
fn a_burst_of_sends_arrives_in_order_and_before_the_senders_exit_signal() {
    for threads in [1, 2] {
        let rt = Runtime::builder().threads(threads).build();
        let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
            ctx.trap_exit(true);
            let me = ctx.addr();
            let sender = ctx
                .spawn_link(move |mut c: Ctx<()>| async move {
                    for n in 0..1000 {
                        c.send(&me, n).unwrap();
                    }
                    // Waits: the burst must not wait with it.
                    c.recv().await;
                    for n in 1000..2000 {
                        c.send(&me, n).unwrap();
                    }
                    if std::hint::black_box(true) {
                        panic!("after the burst");
                    }
                })
                .unwrap();
            let mut got = vec![];
            loop {
                match ctx.recv_timeout(Duration::from_secs(10)).await {
                    Some(Message::User(n)) => {
                        got.push(n);
                        if n == 999 {
                            ctx.send(&sender, ()).unwrap();
                        }
                    }
                    Some(Message::Exit(signal)) => {
                        assert_eq!(signal.from, sender.pid());
                        return (got, signal.reason);
                    }
                    Some(Message::Down(_)) => unreachable!(),
                    None => return (got, ExitReason::error("no exit signal")),
                }
            }
        });
        let (got, reason) = got.unwrap();
        assert_eq!(got, (0..2000).collect::<Vec<_>>(), "{threads} threads");
        assert_eq!(reason, ExitReason::Panic("after the burst".into()));
    }
}

/// Whatever a process sends after a burst to one process, to that process or another, lands
/// after the burst: here a reply (a system message) follows plain messages to the caller. The
/// server looks at the caller's mailbox right after its reply, still inside the slice that
/// batched the burst: the whole burst must be there with the reply.
#[test]
fn a_reply_after_a_burst_does_not_overtake_it() {
    let rt = runtime();
    let seen = Arc::new(Mutex::new(None));
    let seen_by_server = Arc::clone(&seen);
    let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
        let me = ctx.addr();
        let server = ctx
            .spawn(move |mut c: Ctx<(u32, ReplyTo<u32>)>| async move {
                if let Message::User((n, reply_to)) = c.recv().await {
                    for k in 0..10 {
                        c.send(&me, k).unwrap();
                    }
                    reply_to.reply(n);
                    let waiting = c.handle().process_info(me.pid()).map(|i| i.mailbox_len);
                    *seen_by_server.lock().unwrap() = waiting;
                }
            })
            .unwrap();
        let reply = ctx
            .call(&server, |r| (7, r), Duration::from_secs(5))
            .await
            .unwrap();
        // The burst came before the reply, so it is all here: a zero timeout finds it.
        let mut burst = vec![];
        while let Some(Message::User(k)) = ctx.recv_timeout(Duration::ZERO).await {
            burst.push(k);
        }
        (reply, burst)
    });
    assert_eq!(got, Ok((7, (0..10).collect::<Vec<_>>())));
    // Ten burst messages and the reply, in the caller's mailbox as the reply landed.
    assert_eq!(*seen.lock().unwrap(), Some(11));
}

/// A process's sends to itself are never held back: its next receive sees them.
#[test]
fn sends_to_oneself_are_seen_at_once() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
        let me = ctx.addr();
        for n in 0..5 {
            ctx.send(&me, n).unwrap();
        }
        let mut got = vec![];
        while let Some(Message::User(n)) = ctx.recv_timeout(Duration::ZERO).await {
            got.push(n);
        }
        got
    });
    assert_eq!(got, Ok(vec![0, 1, 2, 3, 4]));
}

#[test]
fn selective_receive_keeps_skipped_messages_in_order() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
        let me = ctx.addr();
        for n in 1..=6 {
            ctx.send(&me, n).unwrap();
        }
        let even = ctx
            .recv_matching(|m| matches!(m, Message::User(n) if **n % 2 == 0))
            .await;
        let mut rest = vec![];
        for _ in 0..5 {
            if let Message::User(n) = ctx.recv().await {
                rest.push(n);
            }
        }
        (even, rest)
    });
    assert_eq!(got, Ok((Message::User(2), vec![1, 3, 4, 5, 6])));
}

#[test]
fn recv_timeout_returns_none_once_the_manual_clock_passes_it() {
    let (rt, clock) = manual_runtime(2);
    let h = rt.handle().clone();
    let result = Arc::new(Mutex::new(None));
    let out = Arc::clone(&result);
    let waiter = h
        .spawn(move |mut ctx: Ctx<()>| async move {
            let got = ctx.recv_timeout(Duration::from_secs(30)).await;
            *out.lock().unwrap() = Some((got.is_none(), ctx.now()));
        })
        .unwrap();
    let watch = h.watch(waiter.pid());
    advance_until(&clock, Duration::from_secs(1), || {
        result.lock().unwrap().is_some()
    });
    let (timed_out, at) = result.lock().unwrap().unwrap();
    assert!(timed_out);
    assert!(at >= Duration::from_secs(30), "not before its time: {at:?}");
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Normal));
}

#[test]
fn a_timed_out_receive_does_not_swallow_a_later_message() {
    let (rt, clock) = manual_runtime(2);
    let h = rt.handle().clone();
    let seen = Arc::new(Mutex::new(vec![]));
    let out = Arc::clone(&seen);
    let waiter = h
        .spawn(move |mut ctx: Ctx<u32>| async move {
            let first = ctx
                .recv_matching_timeout(|m| *m == Message::User(&1), Duration::from_secs(5))
                .await;
            out.lock().unwrap().push(format!("{first:?}"));
            let next = ctx.recv().await;
            out.lock().unwrap().push(format!("{next:?}"));
        })
        .unwrap();
    advance_until(&clock, Duration::from_secs(1), || {
        !seen.lock().unwrap().is_empty()
    });
    h.send(&waiter, 2).unwrap();
    exit_of(&h, waiter.pid());
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["None".to_owned(), "User(2)".to_owned()]
    );
}

#[test]
fn bounded_mailbox_reject_returns_mailbox_full() {
    let rt = runtime();
    let got = rt.block_on(|ctx: Ctx<()>| async move {
        let options = SpawnOptions::new().mailbox(MailboxConfig::Bounded {
            capacity: 2,
            overflow: Overflow::Reject,
        });
        // The target waits for a message of another kind, so its mailbox only fills.
        let target = ctx
            .spawn_with(
                |mut c: Ctx<u32>| async move {
                    c.recv_matching(|m| *m == Message::User(&99)).await;
                },
                options,
            )
            .unwrap()
            .addr;
        let results: Vec<_> = (0..3).map(|n| ctx.send(&target, n)).collect();
        (target.pid(), results)
    });
    let (pid, results) = got.unwrap();
    assert_eq!(
        results,
        vec![Ok(()), Ok(()), Err(SendError::MailboxFull(pid))]
    );
}

#[test]
fn bounded_mailbox_drop_newest_counts_what_it_drops() {
    let rt = runtime();
    let h = rt.handle().clone();
    let options = SpawnOptions::new().mailbox(MailboxConfig::Bounded {
        capacity: 3,
        overflow: Overflow::DropNewest,
    });
    let target = h
        .spawn_with(
            |mut c: Ctx<u32>| async move {
                c.recv_matching(|m| *m == Message::User(&99)).await;
            },
            options,
        )
        .unwrap()
        .addr;
    for n in 0..10 {
        assert_eq!(h.send(&target, n), Ok(()));
    }
    let info = h.process_info(target.pid()).unwrap();
    assert_eq!(info.mailbox_len, 3);
    assert_eq!(info.mailbox_dropped, 7);
}

#[test]
fn signals_bypass_the_mailbox_bound() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let me = ctx.addr();
        let options = SpawnOptions::new().mailbox(MailboxConfig::Bounded {
            capacity: 1,
            overflow: Overflow::Reject,
        });
        let target = ctx
            .spawn_with(
                move |mut c: Ctx<u32>| async move {
                    c.trap_exit(true);
                    c.send(&me, ()).unwrap();
                    c.recv_matching(|m| matches!(m, Message::Exit(_))).await;
                },
                options,
            )
            .unwrap()
            .addr;
        let _ready = ctx.recv().await;
        ctx.send(&target, 1).unwrap();
        let refused = ctx.send(&target, 2);
        let monitor = ctx.monitor(target.pid());
        ctx.exit(target.pid(), ExitReason::shutdown_with("full or not"));
        let down = ctx.recv().await;
        (
            refused == Err(SendError::MailboxFull(target.pid())),
            matches!(down, Message::Down(d) if d.reference == monitor && d.reason == ExitReason::Normal),
        )
    });
    assert_eq!(got, Ok((true, true)));
}

// ---------------------------------------------------------------- calls

async fn doubler(mut ctx: Ctx<(u32, ReplyTo<u32>)>) {
    while let Message::User((n, reply_to)) = ctx.recv().await {
        reply_to.reply(n * 2);
    }
}

#[test]
fn call_returns_the_reply() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let server = ctx.spawn(doubler).unwrap();
        ctx.call(&server, |r| (21, r), SAFETY).await
    });
    assert_eq!(got, Ok(Ok(42)));
}

#[test]
fn call_times_out_on_the_runtime_clock() {
    let (rt, clock) = manual_runtime(2);
    let h = rt.handle().clone();
    let result = Arc::new(Mutex::new(None));
    let out = Arc::clone(&result);
    h.spawn(move |mut ctx: Ctx<()>| async move {
        // A server that never answers.
        let mute = ctx
            .spawn(|mut c: Ctx<(u32, ReplyTo<u32>)>| async move {
                let mut kept = vec![];
                while let Message::User(request) = c.recv().await {
                    kept.push(request);
                }
            })
            .unwrap();
        let got = ctx.call(&mute, |r| (1, r), Duration::from_secs(5)).await;
        *out.lock().unwrap() = Some(got);
    })
    .unwrap();
    advance_until(&clock, Duration::from_secs(1), || {
        result.lock().unwrap().is_some()
    });
    assert_eq!(result.lock().unwrap().take(), Some(Err(CallError::Timeout)));
}

#[test]
fn call_to_a_dead_process_returns_noproc_at_once() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (dead, _) = ctx.spawn_monitor(doubler).unwrap();
        ctx.exit(dead.pid(), ExitReason::Kill);
        let _down = ctx.recv().await;
        let started = Instant::now();
        let result = ctx.call(&dead, |r| (1, r), Duration::from_secs(3600)).await;
        (dead.pid(), result, started.elapsed())
    });
    let (pid, result, took) = got.unwrap();
    assert_eq!(
        result,
        Err(CallError::NoProc {
            pid,
            reason: ExitReason::NoProc
        })
    );
    assert!(took < SAFETY, "not after the timeout");
}

#[test]
fn call_to_a_process_that_dies_before_replying_returns_its_reason() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let dying = ctx
            .spawn(|mut c: Ctx<(u32, ReplyTo<u32>)>| async move {
                let _request = c.recv().await;
                ExitReason::error("died mid-call")
            })
            .unwrap();
        (
            dying.pid(),
            ctx.call(&dying, |r| (1, r), Duration::from_secs(3600))
                .await,
        )
    });
    let (pid, result) = got.unwrap();
    assert_eq!(
        result,
        Err(CallError::NoProc {
            pid,
            reason: ExitReason::error("died mid-call")
        })
    );
}

#[test]
fn a_late_reply_is_never_taken_by_a_later_call_or_receive() {
    let (rt, clock) = manual_runtime(2);
    let h = rt.handle().clone();
    let results = Arc::new(Mutex::new(vec![]));
    let out = Arc::clone(&results);
    // The server keeps the first request's ReplyTo and answers it only with the second.
    h.spawn(move |mut ctx: Ctx<u32>| async move {
        let server = ctx
            .spawn(|mut c: Ctx<(u32, ReplyTo<u32>)>| async move {
                let mut held: Option<ReplyTo<u32>> = None;
                while let Message::User((n, reply_to)) = c.recv().await {
                    if let Some(late) = held.take() {
                        late.reply(1000);
                        reply_to.reply(n);
                    } else {
                        held = Some(reply_to);
                    }
                }
            })
            .unwrap();
        let first = ctx.call(&server, |r| (1, r), Duration::from_secs(5)).await;
        out.lock().unwrap().push(format!("{first:?}"));
        let second = ctx.call(&server, |r| (2, r), Duration::from_secs(5)).await;
        out.lock().unwrap().push(format!("{second:?}"));
        let me = ctx.addr();
        ctx.send(&me, 7).unwrap();
        let next = ctx.recv().await;
        out.lock().unwrap().push(format!("{next:?}"));
    })
    .unwrap();
    advance_until(&clock, Duration::from_secs(1), || {
        results.lock().unwrap().len() == 3
    });
    assert_eq!(
        *results.lock().unwrap(),
        vec!["Err(Timeout)", "Ok(2)", "User(7)"]
    );
}

struct Counter(u64);

impl Server for Counter {
    type Call = ();
    type Reply = u64;
    type Cast = u64;
    fn handle_call(&mut self, (): (), _ctx: &mut Ctx<ServerMsg<Self>>) -> Result<u64, ExitReason> {
        Ok(self.0)
    }
    fn handle_cast(&mut self, n: u64, _ctx: &mut Ctx<ServerMsg<Self>>) -> Handled {
        self.0 += n;
        Ok(())
    }
}

#[test]
fn server_callbacks_handle_calls_and_casts_in_order() {
    let rt = runtime();
    let h = rt.handle().clone();
    let counter = h.spawn(Counter(0)).unwrap();
    for n in 1..=10 {
        h.cast(&counter, n).unwrap();
    }
    assert_eq!(h.call(&counter, (), SAFETY), Ok(55));
}

// ---------------------------------------------------------------- registry

#[test]
fn register_whereis_unregister() {
    let rt = runtime();
    let got = rt.block_on(|ctx: Ctx<u32>| async move {
        ctx.register("me").unwrap();
        let found = ctx.whereis::<u32>("me") == Some(ctx.addr());
        let removed = ctx.unregister("me");
        (found, removed, ctx.whereis::<u32>("me"))
    });
    assert_eq!(got, Ok((true, true, None)));
}

#[test]
fn registering_a_taken_name_is_an_error() {
    let rt = runtime();
    let got = rt.block_on(|ctx: Ctx<u32>| async move {
        ctx.register("taken").unwrap();
        let other = ctx
            .spawn(|mut c: Ctx<()>| async move {
                c.recv().await;
            })
            .unwrap();
        let result = ctx.handle().register("taken", &other);
        ctx.exit(other.pid(), ExitReason::Kill);
        (ctx.pid(), result, ctx.register("second name"))
    });
    let (holder, result, second) = got.unwrap();
    assert_eq!(
        result,
        Err(RegistryError::NameTaken {
            name: "taken".into(),
            holder
        })
    );
    assert_eq!(
        second,
        Err(RegistryError::AlreadyNamed {
            pid: holder,
            current: "taken".into()
        })
    );
}

#[test]
fn whereis_checks_the_message_type_and_send_named_delivers() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<String>| async move {
        ctx.register("inbox").unwrap();
        let wrong = ctx.whereis::<u32>("inbox");
        ctx.send_named("inbox", "hello".to_owned()).unwrap();
        let missing = ctx.send_named("nobody", "x".to_owned());
        (wrong, ctx.recv().await, missing)
    });
    assert_eq!(
        got,
        Ok((
            None,
            Message::User("hello".to_owned()),
            Err(SendError::NoName("nobody".into()))
        ))
    );
}

#[test]
fn send_named_with_the_wrong_type_says_so_instead_of_no_name() {
    let rt = runtime();
    let handle = rt.handle().clone();
    let (pid, from_ctx, from_handle, no_name, delivered) = rt
        .block_on(move |mut ctx: Ctx<String>| async move {
            ctx.register("echo").unwrap();
            let from_ctx = ctx.send_named("echo", 7u32);
            let from_handle = std::thread::scope(|scope| {
                scope
                    .spawn(|| handle.send_named("echo", 7u32))
                    .join()
                    .unwrap()
            });
            let no_name = ctx.send_named("nobody", 7u32);
            ctx.send_named("echo", "right".to_owned()).unwrap();
            (ctx.pid(), from_ctx, from_handle, no_name, ctx.recv().await)
        })
        .unwrap();
    let wrong = |result: Result<(), SendError>| match result {
        Err(SendError::WrongType {
            name,
            pid: holder,
            expected,
        }) => {
            assert_eq!(name, "echo");
            assert_eq!(holder, pid);
            assert_eq!(expected, "u32");
        }
        other => panic!("expected WrongType, got {other:?}"),
    };
    wrong(from_ctx);
    wrong(from_handle);
    assert_eq!(no_name, Err(SendError::NoName("nobody".into())));
    assert_eq!(delivered, Message::User("right".to_owned()));
}

// ---------------------------------------------------------------- timers

#[test]
fn send_after_delivers_only_after_the_clock_advances() {
    let (rt, clock) = manual_runtime(2);
    let h = rt.handle().clone();
    let got = Arc::new(Mutex::new(vec![]));
    let out = Arc::clone(&got);
    let receiver = h
        .spawn(move |mut ctx: Ctx<&'static str>| async move {
            while let Message::User(text) = ctx.recv().await {
                out.lock().unwrap().push((text, ctx.now()));
            }
        })
        .unwrap();
    h.send_after(&receiver, "later", Duration::from_secs(10));
    clock.advance(Duration::from_secs(9));
    h.send(&receiver, "now").unwrap();
    advance_until(&clock, Duration::from_millis(500), || {
        got.lock().unwrap().len() == 2
    });
    let got = got.lock().unwrap().clone();
    assert_eq!(got[0].0, "now");
    assert_eq!(got[1].0, "later");
    assert!(got[1].1 >= Duration::from_secs(10));
}

#[test]
fn cancel_timer_returns_whether_it_had_fired() {
    let (rt, clock) = manual_runtime(1);
    let h = rt.handle().clone();
    let target = h
        .spawn(|mut c: Ctx<u32>| async move {
            c.recv_matching(|m| *m == Message::User(&99)).await;
        })
        .unwrap();
    let cancelled = h.send_after(&target, 1, Duration::from_secs(1));
    let fired = h.send_after(&target, 2, Duration::from_secs(1));
    assert!(h.cancel_timer(cancelled));
    clock.advance(Duration::from_secs(2));
    assert!(!h.cancel_timer(fired), "it fired already");
    assert!(!h.cancel_timer(cancelled), "cancelled once");
    assert_eq!(h.pending_timers(), 0);
    assert_eq!(h.process_info(target.pid()).unwrap().mailbox_len, 1);
}

struct Idler {
    timeouts: Arc<Mutex<u32>>,
}

impl Behaviour for Idler {
    type Msg = u32;
    fn init(&mut self, ctx: &mut Ctx<u32>) -> Handled {
        ctx.set_timeout(Some(Duration::from_secs(10)));
        Ok(())
    }
    fn handle_message(&mut self, n: u32, ctx: &mut Ctx<u32>) -> Handled {
        if n > 0 {
            ctx.set_timeout(Some(Duration::from_secs(10)));
        }
        Ok(())
    }
    fn handle_timeout(&mut self, _ctx: &mut Ctx<u32>) -> Handled {
        *self.timeouts.lock().unwrap() += 1;
        Ok(())
    }
}

#[test]
fn behaviour_handle_timeout_fires_when_idle_and_any_message_disarms_it() {
    let (rt, clock) = manual_runtime(1);
    let h = rt.handle().clone();
    let timeouts = Arc::new(Mutex::new(0));
    let idler = h
        .spawn(Idler {
            timeouts: Arc::clone(&timeouts),
        })
        .unwrap();
    advance_until(&clock, Duration::from_secs(1), || {
        *timeouts.lock().unwrap() == 1
    });
    // A message that does not re-arm: no further timeout, however long we wait.
    h.send(&idler, 0).unwrap();
    let started = Instant::now();
    while h.process_info(idler.pid()).unwrap().mailbox_len > 0 {
        assert!(started.elapsed() < SAFETY);
        std::thread::yield_now();
    }
    clock.advance(Duration::from_secs(100));
    assert_eq!(*timeouts.lock().unwrap(), 1);
    // One that re-arms: one more.
    h.send(&idler, 1).unwrap();
    advance_until(&clock, Duration::from_secs(1), || {
        *timeouts.lock().unwrap() == 2
    });
}

#[test]
fn sleep_waits_on_the_runtime_clock() {
    let (rt, clock) = manual_runtime(1);
    let h = rt.handle().clone();
    let woke = Arc::new(Mutex::new(None));
    let out = Arc::clone(&woke);
    h.spawn(move |mut ctx: Ctx<()>| async move {
        ctx.sleep(Duration::from_secs(60)).await;
        *out.lock().unwrap() = Some(ctx.now());
    })
    .unwrap();
    advance_until(&clock, Duration::from_secs(5), || {
        woke.lock().unwrap().is_some()
    });
    assert!(woke.lock().unwrap().unwrap() >= Duration::from_secs(60));
}

// ---------------------------------------------------------------- introspection

#[test]
fn snapshot_shows_links_monitors_trap_exit_name_and_mailbox() {
    let rt = runtime();
    let h = rt.handle().clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let parent = h
        .spawn(move |mut ctx: Ctx<u32>| async move {
            ctx.trap_exit(true);
            ctx.register("parent").unwrap();
            let child = ctx
                .spawn_link(|mut c: Ctx<()>| async move {
                    c.recv().await;
                })
                .unwrap();
            let monitor = ctx.monitor(child.pid());
            ready_tx.send((child.pid(), monitor)).unwrap();
            ctx.recv_matching(|m| *m == Message::User(&99)).await;
        })
        .unwrap();
    let (child, monitor) = ready.recv_timeout(SAFETY).unwrap();
    h.send(&parent, 1).unwrap();
    h.send(&parent, 2).unwrap();
    let info = h.process_info(parent.pid()).unwrap();
    assert_eq!(info.name.as_deref(), Some("parent"));
    assert!(info.trap_exit);
    assert_eq!(info.links, vec![child]);
    assert_eq!(info.monitors, vec![(monitor, child)]);
    assert_eq!(info.mailbox_len, 2);
    let child_info = h.process_info(child).unwrap();
    assert_eq!(child_info.parent, parent.pid());
    assert_eq!(child_info.monitored_by, vec![parent.pid()]);
    assert!(matches!(
        child_info.status,
        Status::Waiting | Status::Runnable | Status::Running
    ));
    assert_eq!(h.snapshot().len(), 2);
}

#[test]
fn stats_count_spawned_exited_and_messages() {
    let rt = runtime();
    let h = rt.handle().clone();
    let before = h.stats();
    let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
        let me = ctx.addr();
        for n in 0..10 {
            ctx.send(&me, n).unwrap();
        }
        for _ in 0..10 {
            ctx.recv().await;
        }
    });
    assert_eq!(got, Ok(()));
    let after = h.stats();
    assert_eq!(after.spawned - before.spawned, 1);
    assert_eq!(after.exited - before.exited, 1);
    assert_eq!(after.messages_sent - before.messages_sent, 10);
    assert_eq!(after.live, 0);
}

struct FailsToStart;

impl Behaviour for FailsToStart {
    type Msg = ();
    fn init(&mut self, _ctx: &mut Ctx<()>) -> Handled {
        Err(ExitReason::error("bad config"))
    }
    fn handle_message(&mut self, (): (), _ctx: &mut Ctx<()>) -> Handled {
        Ok(())
    }
}

#[test]
fn behaviour_init_error_ends_the_process_with_its_reason() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.spawn_monitor(FailsToStart).unwrap();
        ctx.recv().await
    });
    assert!(matches!(got, Ok(Message::Down(d)) if d.reason == ExitReason::error("bad config")));
}

#[test]
fn behaviour_default_handle_exit_stops_on_an_abnormal_reason() {
    struct Trapper;
    impl Behaviour for Trapper {
        type Msg = ();
        fn init(&mut self, ctx: &mut Ctx<()>) -> Handled {
            ctx.trap_exit(true);
            ctx.spawn_link(|_c: Ctx<()>| async {}).unwrap();
            ctx.spawn_link(|_c: Ctx<()>| async { ExitReason::error("child crashed") })
                .unwrap();
            Ok(())
        }
        fn handle_message(&mut self, (): (), _ctx: &mut Ctx<()>) -> Handled {
            Ok(())
        }
    }
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.spawn_monitor(Trapper).unwrap();
        ctx.recv().await
    });
    assert!(
        matches!(&got, Ok(Message::Down(d)) if d.reason == ExitReason::error("child crashed")),
        "{got:?}"
    );
}

/// A receive timer that went to the timer heap cannot be cancelled there; the heap drops it
/// once its process is gone, so long timeouts in short-lived processes do not pile up.
#[test]
fn wait_timers_of_dead_processes_do_not_pile_up() {
    let rt = runtime();
    let handle = rt.handle().clone();
    let before = handle.pending_timers();
    for _ in 0..5_000 {
        // Each process sleeps in a receive with an hour-long timeout (its timer reaches the
        // heap once the scheduler thread idles), then is woken and exits.
        let addr = handle
            .spawn(|mut ctx: Ctx<()>| async move {
                let _ = ctx.recv_timeout(Duration::from_secs(3600)).await;
            })
            .unwrap();
        std::thread::sleep(Duration::from_micros(50));
        handle.send(&addr, ()).unwrap();
        exit_of(&handle, addr.pid());
    }
    let pending = handle.pending_timers() - before;
    assert!(pending <= 1024, "{pending} timers of dead processes left");
}

/// Two blocking jobs queued back to back while one blocking thread is idle: the second gets a
/// thread of its own, not a place behind the first (which here waits for the second).
#[test]
fn a_second_blocking_job_does_not_wait_behind_the_first_for_the_same_idle_thread() {
    let rt = runtime();
    let got = rt
        .block_on(|mut ctx: Ctx<Option<bool>>| async move {
            // One blocking thread, now idle.
            ctx.blocking(|| ()).await;
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            // Both queued at once: the first waits for the second.
            ctx.spawn_blocking(
                move || rx.recv_timeout(Duration::from_secs(5)).is_ok(),
                Some,
            );
            ctx.spawn_blocking(
                move || {
                    let _ = tx.send(());
                },
                |()| None,
            );
            loop {
                if let Message::User(Some(ok)) = ctx.recv().await {
                    return ok;
                }
            }
        })
        .unwrap();
    assert!(got, "the second job ran while the first waited");
}
