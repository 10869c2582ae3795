//! Supervisors (DESIGN.md §5), one test per rule, named after it. Crashes are made with
//! `exit(child, reason)` from outside; a test waits for the crashed child to be gone before it
//! asks the supervisor anything, so the exit signal is in the supervisor's mailbox ahead of the
//! request. Time-dependent rules (intensity period, shutdown timeout) run on the manual clock.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baobab::supervisor::{
    ChildCounts, ChildInfo, ChildKind, ChildSpec, DynamicSpec, DynamicSupervisor, Restart,
    Shutdown, Strategy, Supervisor, SupervisorError, SupervisorSpec,
};
use baobab::{Clock, Ctx, ExitReason, Handle, ManualClock, Message, Pid, Runtime};
use common::{SAFETY, runtime};

type Log = Arc<Mutex<Vec<String>>>;

fn log() -> Log {
    Arc::new(Mutex::new(Vec::new()))
}

fn entries(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Logs `stop <id>` when dropped: moved into a child's body, it is dropped when the process
/// ends, whether or not the body ever ran, before its supervisor hears of the exit.
struct StopLog(String, Log);

impl Drop for StopLog {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(format!("stop {}", self.0));
    }
}

/// A worker whose start logs `start <id>` (in the supervisor, as it starts it) and whose end
/// logs `stop <id>`.
fn logged(id: &str, log: &Log) -> ChildSpec {
    let (name, log) = (id.to_owned(), Arc::clone(log));
    ChildSpec::worker(id, move |start| {
        log.lock().unwrap().push(format!("start {name}"));
        let guard = StopLog(name.clone(), Arc::clone(&log));
        start.spawn(move |mut ctx: Ctx<()>| async move {
            let _guard = guard;
            while let Message::User(()) = ctx.recv().await {}
        })
    })
}

/// A plain worker that waits forever (dies of any exit signal but `normal`).
fn idle(id: &str) -> ChildSpec {
    ChildSpec::worker(id, |start| {
        start.spawn(
            |mut ctx: Ctx<()>| async move { while let Message::User(()) = ctx.recv().await {} },
        )
    })
}

fn children(handle: &Handle, sup: Supervisor) -> Vec<ChildInfo> {
    handle
        .block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
        .unwrap()
        .unwrap()
}

fn pid_of(handle: &Handle, sup: Supervisor, id: &str) -> Option<Pid> {
    children(handle, sup)
        .into_iter()
        .find(|c| c.id == id)
        .and_then(|c| c.pid)
}

/// Crashes a child with `reason` and waits until it is gone. The watch is set before the
/// signal, so it fires after the child's links (the supervisor) heard of the exit.
fn crash(handle: &Handle, pid: Pid, reason: ExitReason) {
    let watch = handle.watch(pid);
    handle.exit(pid, reason);
    watch
        .wait_timeout(SAFETY)
        .unwrap_or_else(|| panic!("{pid} did not exit"));
}

fn manual_runtime() -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .threads(2)
        .clock(Clock::manual(&clock))
        .build();
    (rt, clock)
}

// ---------------------------------------------------------------- start and stop order

#[test]
fn children_start_in_order_and_stop_in_reverse_order() {
    let rt = runtime();
    let log = log();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(logged("a", &log))
        .child(logged("b", &log))
        .child(logged("c", &log));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    assert_eq!(entries(&log), ["start a", "start b", "start c"]);
    assert_eq!(sup.shutdown(rt.handle()), ExitReason::Shutdown);
    assert_eq!(
        entries(&log),
        [
            "start a", "start b", "start c", "stop c", "stop b", "stop a"
        ]
    );
}

#[test]
fn a_failing_start_fails_the_supervisor_and_stops_the_children_already_started() {
    let rt = runtime();
    let log = log();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(logged("a", &log))
        .child(logged("b", &log))
        .child(ChildSpec::worker("bad", |_| {
            Err(ExitReason::error("no database"))
        }))
        .child(logged("never", &log));
    let started = Supervisor::start(rt.handle(), spec);
    assert_eq!(started, Err(ExitReason::error("no database")));
    assert_eq!(entries(&log), ["start a", "start b", "stop b", "stop a"]);
    assert_eq!(rt.handle().stats().live, 0);
}

#[test]
fn shutdown_of_a_supervisor_returns_when_its_whole_subtree_is_gone() {
    let rt = runtime();
    let inner = SupervisorSpec::new(Strategy::OneForOne)
        .child(idle("w1"))
        .child(idle("w2"));
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::supervisor("inner", inner))
        .child(idle("w3"));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    assert_eq!(rt.handle().stats().live, 5);
    assert_eq!(sup.shutdown(rt.handle()), ExitReason::Shutdown);
    assert_eq!(rt.handle().stats().live, 0);
}

// ---------------------------------------------------------------- restart types

fn one_child(restart: Restart) -> (Runtime, Supervisor, Pid) {
    let rt = runtime();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(5))
        .child(idle("child").restart(restart));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    let pid = pid_of(rt.handle(), sup, "child").unwrap();
    (rt, sup, pid)
}

/// A child, registered under `id`, that exits by itself with the reason it is sent.
fn exits_when_told(id: &str, restart: Restart) -> ChildSpec {
    let name = id.to_owned();
    ChildSpec::worker(id, move |start| {
        let name = name.clone();
        start.spawn(move |mut ctx: Ctx<ExitReason>| async move {
            ctx.register(&name).unwrap();
            match ctx.recv().await {
                Message::User(reason) => reason,
                _ => ExitReason::Normal,
            }
        })
    })
    .restart(restart)
}

/// Tells the child registered as `id` (pid `pid`) to exit with `reason`; waits until it is
/// gone.
fn tell_to_exit(handle: &Handle, id: &str, pid: Pid, reason: ExitReason) {
    let started = Instant::now();
    let addr = loop {
        match handle.whereis::<ExitReason>(id) {
            Some(addr) if addr.pid() == pid => break addr,
            _ => {
                assert!(started.elapsed() < SAFETY, "{id} never registered");
                std::thread::yield_now();
            }
        }
    };
    let watch = handle.watch(pid);
    handle.send(&addr, reason).unwrap();
    watch.wait_timeout(SAFETY).expect("the child exits");
}

#[test]
fn permanent_child_is_restarted_whatever_the_reason() {
    for reason in [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::shutdown_with("x"),
        ExitReason::error("boom"),
        ExitReason::Kill,
    ] {
        let (rt, sup, pid) = one_child(Restart::Permanent);
        if reason.is_normal() {
            // exit(pid, normal) does nothing to a process that does not trap exits.
            rt.handle().exit(pid, reason);
            assert_eq!(pid_of(rt.handle(), sup, "child"), Some(pid));
            continue;
        }
        crash(rt.handle(), pid, reason.clone());
        let now = pid_of(rt.handle(), sup, "child");
        assert!(now.is_some() && now != Some(pid), "{reason}: {now:?}");
    }
    // A permanent child that ends normally on its own is restarted too.
    let rt = runtime();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(exits_when_told("child", Restart::Permanent));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    let pid = pid_of(rt.handle(), sup, "child").unwrap();
    tell_to_exit(rt.handle(), "child", pid, ExitReason::Normal);
    let info = &children(rt.handle(), sup)[0];
    assert!(info.pid.is_some() && info.pid != Some(pid));
    assert_eq!(info.restarts, 1);
    assert_eq!(info.last_exit, Some(ExitReason::Normal));
}

#[test]
fn transient_child_is_restarted_unless_normal_shutdown_or_shutdown_with() {
    for (reason, restarted) in [
        (ExitReason::Normal, false),
        (ExitReason::Shutdown, false),
        (ExitReason::shutdown_with("x"), false),
        (ExitReason::error("boom"), true),
        (ExitReason::Panic("oops".into()), true),
    ] {
        let rt = runtime();
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(exits_when_told("child", Restart::Transient));
        let sup = Supervisor::start(rt.handle(), spec).unwrap();
        let pid = pid_of(rt.handle(), sup, "child").unwrap();
        tell_to_exit(rt.handle(), "child", pid, reason.clone());
        let info = &children(rt.handle(), sup)[0];
        assert_eq!(info.pid.is_some(), restarted, "{reason}");
        assert_eq!(info.last_exit, Some(reason.clone()));
    }
}

#[test]
fn temporary_child_is_never_restarted_and_is_removed() {
    for reason in [ExitReason::error("boom"), ExitReason::Kill] {
        let (rt, sup, pid) = one_child(Restart::Temporary);
        crash(rt.handle(), pid, reason);
        assert!(children(rt.handle(), sup).is_empty());
    }
}

// ---------------------------------------------------------------- strategies

fn three(strategy: Strategy) -> (Runtime, Supervisor, [Pid; 3]) {
    let rt = runtime();
    let spec = SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(5))
        .child(idle("a"))
        .child(idle("b"))
        .child(idle("c"));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    let pids = ["a", "b", "c"].map(|id| pid_of(rt.handle(), sup, id).unwrap());
    (rt, sup, pids)
}

/// Which of a, b, c have a new pid after b crashed.
fn restarted_after_b_crashed(strategy: Strategy) -> [bool; 3] {
    let (rt, sup, before) = three(strategy);
    crash(rt.handle(), before[1], ExitReason::error("boom"));
    let after = ["a", "b", "c"].map(|id| pid_of(rt.handle(), sup, id).unwrap());
    [0, 1, 2].map(|i| after[i] != before[i])
}

#[test]
fn one_for_one_restarts_only_the_child_that_exited() {
    assert_eq!(
        restarted_after_b_crashed(Strategy::OneForOne),
        [false, true, false]
    );
}

#[test]
fn one_for_all_restarts_every_child() {
    assert_eq!(
        restarted_after_b_crashed(Strategy::OneForAll),
        [true, true, true]
    );
}

#[test]
fn rest_for_one_restarts_the_child_and_those_started_after_it() {
    assert_eq!(
        restarted_after_b_crashed(Strategy::RestForOne),
        [false, true, true]
    );
}

#[test]
fn one_for_all_stops_the_others_in_reverse_order_then_starts_all_in_order() {
    let rt = runtime();
    let log = log();
    let spec = SupervisorSpec::new(Strategy::OneForAll)
        .child(logged("a", &log))
        .child(logged("b", &log))
        .child(logged("c", &log));
    let sup = Supervisor::start(rt.handle(), spec).unwrap();
    let b = pid_of(rt.handle(), sup, "b").unwrap();
    crash(rt.handle(), b, ExitReason::Kill);
    children(rt.handle(), sup);
    assert_eq!(
        entries(&log),
        [
            "start a", "start b", "start c", "stop b", "stop c", "stop a", "start a", "start b",
            "start c"
        ]
    );
}

// ---------------------------------------------------------------- intensity

#[test]
fn intensity_allows_exactly_max_restarts_in_the_period_and_one_more_stops_the_supervisor() {
    // OTP 25 with intensity 2 / period 5 s: two restarts, and the third crash stops the
    // supervisor with `shutdown`.
    let (rt, _clock) = manual_runtime();
    let h = rt.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(5))
        .child(idle("child"));
    let sup = Supervisor::start(h, spec).unwrap();
    let watch = h.watch(sup.pid());
    for _ in 0..2 {
        let pid = pid_of(h, sup, "child").unwrap();
        crash(h, pid, ExitReason::error("boom"));
    }
    assert_eq!(children(h, sup)[0].restarts, 2);
    let pid = pid_of(h, sup, "child").unwrap();
    crash(h, pid, ExitReason::error("boom"));
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Shutdown));
    assert_eq!(h.stats().live, 0);
}

#[test]
fn restarts_older_than_the_period_do_not_count() {
    let (rt, clock) = manual_runtime();
    let h = rt.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(5))
        .child(idle("child"));
    let sup = Supervisor::start(h, spec).unwrap();
    for _ in 0..6 {
        let pid = pid_of(h, sup, "child").unwrap();
        crash(h, pid, ExitReason::error("boom"));
        // Asking again waits until the restart is done, so it is recorded before the advance.
        assert!(pid_of(h, sup, "child").is_some());
        clock.advance(Duration::from_secs(3));
    }
    assert!(h.is_alive(sup.pid()));
    assert_eq!(children(h, sup)[0].restarts, 6);
    assert_eq!(h.stats().restarts, 6);
}

#[test]
fn a_child_whose_start_fails_during_a_restart_is_retried_within_the_intensity() {
    let rt = runtime();
    let h = rt.handle();
    let starts = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&starts);
    // Starts the first time, fails the next two times, then starts again.
    let flaky = ChildSpec::worker("flaky", move |start| {
        let mut n = counter.lock().unwrap();
        *n += 1;
        if (2..=3).contains(&*n) {
            return Err(ExitReason::error("not yet"));
        }
        start.spawn(
            |mut ctx: Ctx<()>| async move { while let Message::User(()) = ctx.recv().await {} },
        )
    });
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(3, Duration::from_secs(5))
        .child(flaky.clone());
    let sup = Supervisor::start(h, spec).unwrap();
    let pid = pid_of(h, sup, "flaky").unwrap();
    crash(h, pid, ExitReason::error("boom"));
    assert!(pid_of(h, sup, "flaky").is_some());
    assert_eq!(*starts.lock().unwrap(), 4);

    // With one restart fewer allowed, the failing starts spend the intensity: shutdown.
    *starts.lock().unwrap() = 0;
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(5))
        .child(flaky);
    let sup = Supervisor::start(h, spec).unwrap();
    let watch = h.watch(sup.pid());
    let pid = pid_of(h, sup, "flaky").unwrap();
    crash(h, pid, ExitReason::error("boom"));
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Shutdown));
}

#[test]
fn a_restart_storm_in_a_three_level_tree_escalates_to_the_top_and_leaves_no_live_process() {
    let rt = runtime();
    let h = rt.handle();
    let bottom = ChildSpec::worker("worker", |start| {
        start.spawn(|mut ctx: Ctx<()>| async move {
            ctx.register("bottom").unwrap();
            while let Message::User(()) = ctx.recv().await {}
        })
    });
    let leaf = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(60))
        .child(bottom);
    let middle = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1, Duration::from_secs(60))
        .child(ChildSpec::supervisor("leaf", leaf));
    let top = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(0, Duration::from_secs(60))
        .child(ChildSpec::supervisor("middle", middle));
    let sup = Supervisor::start(h, top).unwrap();
    let watch = h.watch(sup.pid());
    assert_eq!(h.stats().live, 4);
    // Keep crashing the bottom worker: the leaf gives up after one restart, the middle after
    // one restart of the leaf, and the top (intensity 0) on the middle's first exit.
    let started = Instant::now();
    let mut crashes = 0;
    while h.is_alive(sup.pid()) {
        assert!(
            started.elapsed() < SAFETY,
            "the storm never reached the top"
        );
        match h.whereis_pid("bottom") {
            Some(worker) => {
                crash(h, worker, ExitReason::error("storm"));
                crashes += 1;
            }
            None => std::thread::yield_now(),
        }
    }
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Shutdown));
    // Leaf 1: crash, restart, crash (gives up); leaf 2: the same; then the middle gives up.
    assert_eq!(crashes, 4);
    while h.stats().live > 0 {
        assert!(
            started.elapsed() < SAFETY,
            "processes left: {:?}",
            h.snapshot()
        );
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------- shutdown kinds

/// A child that traps exits and ignores `shutdown`.
fn stubborn(id: &str, shutdown: Shutdown) -> ChildSpec {
    ChildSpec::worker(id, |start| {
        start.spawn(|mut ctx: Ctx<()>| async move {
            ctx.trap_exit(true);
            // Nobody sends it a user message: it takes every exit signal and goes on.
            while !matches!(ctx.recv().await, Message::User(())) {}
        })
    })
    .shutdown(shutdown)
}

#[test]
fn brutal_kill_stops_a_child_that_traps_exits_at_once() {
    let rt = runtime();
    let h = rt.handle();
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(stubborn("child", Shutdown::BrutalKill));
    let sup = Supervisor::start(h, spec).unwrap();
    let pid = pid_of(h, sup, "child").unwrap();
    h.block_on(move |mut ctx: Ctx<()>| async move { sup.terminate_child(&mut ctx, "child").await })
        .unwrap()
        .unwrap();
    assert!(!h.is_alive(pid));
    assert_eq!(children(h, sup)[0].last_exit, Some(ExitReason::Killed));
}

#[test]
fn a_shutdown_timeout_kills_a_child_that_ignores_shutdown() {
    let (rt, clock) = manual_runtime();
    let h = rt.handle().clone();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(stubborn("child", Shutdown::Timeout(Duration::from_secs(2))));
    let sup = Supervisor::start(&h, spec).unwrap();
    let pid = pid_of(&h, sup, "child").unwrap();
    let stopping = {
        let h = h.clone();
        std::thread::spawn(move || {
            h.block_on(move |mut ctx: Ctx<()>| async move {
                sup.terminate_child(&mut ctx, "child").await
            })
        })
    };
    // The child ignores `shutdown`: it lives until the clock passes the timeout.
    let started = Instant::now();
    let mut advanced = Duration::ZERO;
    while h.is_alive(pid) {
        assert!(started.elapsed() < SAFETY, "the child was never killed");
        clock.advance(Duration::from_millis(100));
        advanced += Duration::from_millis(100);
        std::thread::yield_now();
    }
    assert!(
        advanced >= Duration::from_secs(2),
        "killed before its timeout"
    );
    stopping.join().unwrap().unwrap().unwrap();
    assert_eq!(children(&h, sup)[0].last_exit, Some(ExitReason::Killed));
}

// ---------------------------------------------------------------- the API

#[test]
fn start_terminate_restart_delete_which_and_count_children() {
    let rt = runtime();
    let h = rt.handle();
    let sup = Supervisor::start(h, SupervisorSpec::new(Strategy::OneForOne)).unwrap();
    let result = h
        .block_on(move |mut ctx: Ctx<()>| async move {
            let first = sup.start_child(&mut ctx, idle("a")).await?;
            assert_eq!(
                sup.start_child(&mut ctx, idle("a")).await,
                Err(SupervisorError::AlreadyPresent("a".into()))
            );
            sup.start_child(&mut ctx, idle("b").restart(Restart::Temporary))
                .await?;
            assert_eq!(
                sup.count_children(&mut ctx).await?,
                ChildCounts {
                    specs: 2,
                    active: 2,
                    supervisors: 0,
                    workers: 2
                }
            );
            assert_eq!(
                sup.restart_child(&mut ctx, "a").await,
                Err(SupervisorError::Running("a".into()))
            );
            assert_eq!(
                sup.delete_child(&mut ctx, "a").await,
                Err(SupervisorError::Running("a".into()))
            );
            sup.terminate_child(&mut ctx, "a").await?;
            assert!(!ctx.is_alive(first));
            let second = sup.restart_child(&mut ctx, "a").await?;
            assert_ne!(first, second);
            sup.terminate_child(&mut ctx, "a").await?;
            sup.delete_child(&mut ctx, "a").await?;
            // A temporary child's spec goes when it is terminated.
            sup.terminate_child(&mut ctx, "b").await?;
            assert_eq!(
                sup.terminate_child(&mut ctx, "b").await,
                Err(SupervisorError::NotFound("b".into()))
            );
            let failed = sup
                .start_child(
                    &mut ctx,
                    ChildSpec::worker("bad", |_| Err(ExitReason::error("nope"))),
                )
                .await;
            assert_eq!(
                failed,
                Err(SupervisorError::StartFailed {
                    id: "bad".into(),
                    reason: ExitReason::error("nope")
                })
            );
            sup.which_children(&mut ctx).await
        })
        .unwrap();
    assert_eq!(result, Ok(vec![]));
}

#[test]
fn restart_now_restarts_a_running_child_by_id() {
    let (rt, sup, pid) = one_child(Restart::Permanent);
    let h = rt.handle();
    let new = h
        .block_on(move |mut ctx: Ctx<()>| async move { sup.restart_now(&mut ctx, "child").await })
        .unwrap()
        .unwrap();
    assert_ne!(new, pid);
    assert!(!h.is_alive(pid));
    let info = &children(h, sup)[0];
    assert_eq!((info.pid, info.restarts), (Some(new), 1));
    assert_eq!(info.kind, ChildKind::Worker);
}

#[test]
fn an_exit_from_the_supervisors_parent_stops_the_tree_with_the_parents_reason() {
    let rt = runtime();
    let log = log();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(logged("a", &log))
        .child(logged("b", &log));
    let (tx, rx) = std::sync::mpsc::channel();
    let parent = rt
        .handle()
        .spawn(move |mut ctx: Ctx<()>| async move {
            let sup = Supervisor::start_link(&mut ctx, spec).await.unwrap();
            tx.send(sup).unwrap();
            ctx.recv().await;
            ExitReason::error("parent gave up")
        })
        .unwrap();
    let sup = rx.recv().unwrap();
    let watch = rt.handle().watch(sup.pid());
    rt.handle().send(&parent, ()).unwrap();
    assert_eq!(
        watch.wait_timeout(SAFETY),
        Some(ExitReason::error("parent gave up"))
    );
    assert_eq!(entries(&log), ["start a", "start b", "stop b", "stop a"]);
}

// ---------------------------------------------------------------- dynamic supervisors

/// Children that record the argument they were started with.
fn dynamic(seen: &Arc<Mutex<Vec<u32>>>) -> DynamicSpec<u32> {
    let seen = Arc::clone(seen);
    DynamicSpec::worker("conn", move |start, n: u32| {
        seen.lock().unwrap().push(n);
        start.spawn(
            |mut ctx: Ctx<()>| async move { while let Message::User(()) = ctx.recv().await {} },
        )
    })
    .intensity(5, Duration::from_secs(5))
}

#[test]
fn dynamic_children_start_with_their_arguments_and_restart_with_the_same_ones() {
    let rt = runtime();
    let h = rt.handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sup = DynamicSupervisor::start(h, dynamic(&seen)).unwrap();
    let (a, b) = h
        .block_on(move |mut ctx: Ctx<()>| async move {
            let a = sup.start_child(&mut ctx, 1).await.unwrap();
            let b = sup.start_child(&mut ctx, 2).await.unwrap();
            (a, b)
        })
        .unwrap();
    crash(h, b, ExitReason::error("boom"));
    let children = h
        .block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
        .unwrap()
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 2, 2]);
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].pid, Some(a));
    assert_ne!(children[1].pid, Some(b));
    assert_eq!(children[1].restarts, 1);
    assert_eq!(h.stats().restarts, 1);
}

#[test]
fn dynamic_max_children_refuses_one_more() {
    let rt = runtime();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sup = DynamicSupervisor::start(rt.handle(), dynamic(&seen).max_children(2)).unwrap();
    let third = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            sup.start_child(&mut ctx, 1).await.unwrap();
            sup.start_child(&mut ctx, 2).await.unwrap();
            sup.start_child(&mut ctx, 3).await
        })
        .unwrap();
    assert_eq!(third, Err(SupervisorError::MaxChildren(2)));
}

#[test]
fn dynamic_scale_starts_or_stops_the_difference_and_terminate_child_takes_a_pid() {
    let rt = runtime();
    let h = rt.handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sup = DynamicSupervisor::start(h, dynamic(&seen).max_children(10)).unwrap();
    let (up, capped, down, after_terminate) = h
        .block_on(move |mut ctx: Ctx<()>| async move {
            let up = sup.scale(&mut ctx, 5, 7).await.unwrap();
            let capped = sup.scale(&mut ctx, 50, 7).await.unwrap();
            let down = sup.scale(&mut ctx, 2, 7).await.unwrap();
            let first = sup.which_children(&mut ctx).await.unwrap()[0].pid.unwrap();
            sup.terminate_child(&mut ctx, first).await.unwrap();
            assert_eq!(
                sup.terminate_child(&mut ctx, first).await,
                Err(SupervisorError::NoChild(first))
            );
            let after = sup.count_children(&mut ctx).await.unwrap().active;
            (up, capped, down, after)
        })
        .unwrap();
    assert_eq!((up, capped, down, after_terminate), (5, 10, 2, 1));
    // The supervisor and its one child are all that is left.
    assert_eq!(h.stats().live, 2);
}

#[test]
fn dynamic_shutdown_stops_every_child_and_intensity_applies_as_one_for_one() {
    let rt = runtime();
    let h = rt.handle();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sup = DynamicSupervisor::start(h, dynamic(&seen)).unwrap();
    h.block_on(move |mut ctx: Ctx<()>| async move { sup.scale(&mut ctx, 20, 0).await })
        .unwrap()
        .unwrap();
    assert_eq!(h.stats().live, 21);
    assert_eq!(sup.shutdown(h), ExitReason::Shutdown);
    let left = h.snapshot();
    assert_eq!(h.stats().live, 0, "{:#?}", left.first());

    // Intensity 5 in 5 s: the sixth crash stops the supervisor and the other children.
    let sup = DynamicSupervisor::start(h, dynamic(&seen)).unwrap();
    let watch = h.watch(sup.pid());
    h.block_on(move |mut ctx: Ctx<()>| async move { sup.scale(&mut ctx, 3, 0).await })
        .unwrap()
        .unwrap();
    for _ in 0..6 {
        let first = h
            .block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
            .unwrap()
            .unwrap()[0]
            .pid
            .unwrap();
        crash(h, first, ExitReason::error("boom"));
    }
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Shutdown));
    let started = Instant::now();
    while h.stats().live > 0 {
        assert!(
            started.elapsed() < SAFETY,
            "processes left: {:?}",
            h.snapshot()
        );
        std::thread::yield_now();
    }
}
