//! Crash reports: every abnormal exit is told at `error` level by default, as OTP's logger
//! does, with a process report from the crashed process and a supervisor report from its
//! supervisor; `CrashReports` turns them off or sends them to a hook.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baobab::supervisor::{ChildSpec, Restart, Strategy, Supervisor, SupervisorSpec};
use baobab::{
    Behaviour, CrashReport, CrashReports, CrashSource, Ctx, ExitReason, Handle, Handled, Message,
    Pid, Runtime,
};
use common::log::captured;

type Reports = Arc<Mutex<Vec<CrashReport>>>;

/// A runtime whose reports go to the returned list.
fn hooked() -> (Runtime, Reports) {
    let reports: Reports = Arc::default();
    let sink = Arc::clone(&reports);
    let rt = Runtime::builder()
        .threads(2)
        .crash_reports(CrashReports::hook(move |report| {
            sink.lock().unwrap().push(report.clone())
        }))
        .build();
    (rt, reports)
}

fn reports_of(reports: &Reports, pid: Pid) -> Vec<CrashReport> {
    let reports = reports.lock().unwrap();
    reports.iter().filter(|r| r.pid == pid).cloned().collect()
}

/// Spawns a process that exits with `reason` once it gets a message, and waits for that.
fn exit_with(handle: &Handle, reason: ExitReason) -> Pid {
    let process = handle
        .spawn(move |mut ctx: Ctx<()>| async move {
            let _ = ctx.recv().await;
            reason
        })
        .unwrap();
    let watch = handle.watch(process.pid());
    handle.send(&process, ()).unwrap();
    watch.wait();
    process.pid()
}

#[test]
fn an_unlinked_crash_is_logged_at_error_level_by_default() {
    let log = captured();
    let rt = Runtime::builder().threads(2).build();
    let crasher = rt
        .handle()
        .spawn(|mut ctx: Ctx<u32>| async move {
            ctx.register("crash-report-demo").unwrap();
            // Two messages arrive; the first one makes it panic.
            let _ = ctx.recv().await;
            if ctx.pid() != Pid::EXTERNAL {
                panic!("the cache is corrupt");
            }
        })
        .unwrap();
    let watch = rt.handle().watch(crasher.pid());
    while rt.handle().whereis_pid("crash-report-demo").is_none() {
        std::thread::yield_now();
    }
    rt.handle().send(&crasher, 1).unwrap();
    rt.handle().send(&crasher, 2).unwrap();
    watch.wait();
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|line| line.contains(&crasher.pid().to_string()) && line.contains("crash report"))
        .unwrap_or_else(|| panic!("no crash report in {text:?}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("panic: the cache is corrupt"), "{line}");
    assert!(
        line.contains("name=\"crash-report-demo\"") || line.contains("name=crash-report-demo"),
        "{line}"
    );
    assert!(line.contains("mailbox_len="), "{line}");
}

#[test]
fn a_process_report_says_pid_name_reason_and_mailbox_length() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    let crasher = h
        .spawn(|mut ctx: Ctx<u32>| async move {
            ctx.register("reported").unwrap();
            // Waits until three messages are queued, takes one, and crashes.
            while ctx.handle().process_info(ctx.pid()).unwrap().mailbox_len < 3 {
                ctx.sleep(Duration::from_millis(1)).await;
            }
            let _ = ctx.recv().await;
            ExitReason::error("bad input")
        })
        .unwrap();
    let watch = h.watch(crasher.pid());
    for n in 0..3 {
        h.send(&crasher, n).unwrap();
    }
    watch.wait();
    let [report] = &reports_of(&reports, crasher.pid())[..] else {
        panic!("one report expected: {:?}", reports.lock().unwrap());
    };
    assert_eq!(report.reason, ExitReason::error("bad input"));
    match &report.source {
        CrashSource::Process {
            name, mailbox_len, ..
        } => {
            assert_eq!(name.as_deref(), Some("reported"));
            assert_eq!(*mailbox_len, 2);
        }
        other => panic!("a process report expected, got {other:?}"),
    }
}

#[test]
fn every_abnormal_reason_of_its_own_is_reported_and_clean_ones_are_not() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    for reason in [
        ExitReason::error("e"),
        ExitReason::Kill,
        ExitReason::Panic("p".into()),
    ] {
        let pid = exit_with(h, reason.clone());
        let got = reports_of(&reports, pid);
        assert_eq!(got.len(), 1, "{reason}: {got:?}");
        assert_eq!(got[0].reason, reason);
    }
    for reason in [
        ExitReason::Normal,
        ExitReason::Shutdown,
        ExitReason::shutdown_with("done"),
    ] {
        let pid = exit_with(h, reason.clone());
        assert_eq!(reports_of(&reports, pid), [], "{reason}");
    }
}

struct FailsOnZero;

impl Behaviour for FailsOnZero {
    type Msg = u32;
    fn handle_message(&mut self, n: u32, _ctx: &mut Ctx<u32>) -> Handled {
        if n == 0 {
            Err(ExitReason::error("zero"))
        } else {
            Ok(())
        }
    }
}

#[test]
fn a_behaviour_that_returns_an_error_and_one_that_panics_are_reported() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    let failing = h.spawn(FailsOnZero).unwrap();
    let watch = h.watch(failing.pid());
    h.send(&failing, 1).unwrap();
    h.send(&failing, 0).unwrap();
    watch.wait();
    assert_eq!(
        reports_of(&reports, failing.pid())
            .iter()
            .map(|r| r.reason.clone())
            .collect::<Vec<_>>(),
        [ExitReason::error("zero")]
    );
    // The same behaviour panicking on a message.
    struct PanicsOnZero;
    impl Behaviour for PanicsOnZero {
        type Msg = u32;
        fn handle_message(&mut self, n: u32, _ctx: &mut Ctx<u32>) -> Handled {
            assert!(n != 0, "zero again");
            Ok(())
        }
    }
    let panicking = h.spawn(PanicsOnZero).unwrap();
    let watch = h.watch(panicking.pid());
    h.send(&panicking, 0).unwrap();
    watch.wait();
    assert_eq!(
        reports_of(&reports, panicking.pid())
            .iter()
            .map(|r| r.reason.clone())
            .collect::<Vec<_>>(),
        [ExitReason::Panic("zero again".into())]
    );
}

#[test]
fn a_process_killed_by_a_signal_makes_no_report_of_its_own() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    // A crashes; B, linked to it and not trapping, dies of the signal: one report, A's.
    let (a, b) = rt
        .block_on(|ctx: Ctx<()>| async move {
            let a = ctx
                .spawn(|mut ctx: Ctx<()>| async move {
                    let _ = ctx.recv().await;
                    ExitReason::error("first")
                })
                .unwrap();
            let b = ctx
                .spawn(move |mut ctx: Ctx<()>| async move {
                    ctx.link(a.pid());
                    while let Message::User(()) = ctx.recv().await {}
                })
                .unwrap();
            (a, b)
        })
        .unwrap();
    let watch_b = h.watch(b.pid());
    while h
        .process_info(b.pid())
        .is_none_or(|info| info.links.is_empty())
    {
        std::thread::yield_now();
    }
    h.send(&a, ()).unwrap();
    assert_eq!(watch_b.wait(), ExitReason::error("first"));
    assert_eq!(reports_of(&reports, a.pid()).len(), 1);
    assert_eq!(reports_of(&reports, b.pid()), []);
    // An exit signal from outside: no report either.
    let c = h
        .spawn(|mut ctx: Ctx<()>| async move {
            let _ = ctx.recv().await;
        })
        .unwrap();
    let watch_c = h.watch(c.pid());
    h.exit(c.pid(), ExitReason::error("from outside"));
    watch_c.wait();
    assert_eq!(reports_of(&reports, c.pid()), []);
}

/// A supervised worker registered as `name`: it exits with the reason it is sent.
fn worker(name: &'static str, restart: Restart) -> ChildSpec {
    ChildSpec::worker(name, move |start| {
        start.spawn(move |mut ctx: Ctx<ExitReason>| async move {
            ctx.register(name).unwrap();
            match ctx.recv().await {
                Message::User(reason) => reason,
                _ => ExitReason::Normal,
            }
        })
    })
    .restart(restart)
}

/// Waits until `name` is registered by a process other than `not`.
fn registered(h: &Handle, name: &str, not: Option<Pid>) -> Pid {
    loop {
        if let Some(pid) = h.whereis_pid(name)
            && Some(pid) != not
        {
            return pid;
        }
        std::thread::yield_now();
    }
}

fn supervisor_reports(reports: &Reports, child: &str) -> Vec<(Pid, ExitReason, u32)> {
    let reports = reports.lock().unwrap();
    reports
        .iter()
        .filter_map(|r| match &r.source {
            CrashSource::Supervisor {
                child: id,
                restarts,
                ..
            } if id == child => Some((r.pid, r.reason.clone(), *restarts)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_supervisor_reports_each_child_exit_as_otp_does_with_the_restarts_so_far() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(worker("permanent", Restart::Permanent))
        .child(worker("transient", Restart::Transient));
    let sup = Supervisor::start(h, spec).unwrap();

    // Two crashes of the permanent child: reports with 0 and 1 restarts before.
    let first = registered(h, "permanent", None);
    h.send_named("permanent", ExitReason::error("crash 1"))
        .unwrap();
    let second = registered(h, "permanent", Some(first));
    h.send_named("permanent", ExitReason::error("crash 2"))
        .unwrap();
    let third = registered(h, "permanent", Some(second));
    // A permanent child's normal exit is reported too (it is restarted).
    h.send_named("permanent", ExitReason::Normal).unwrap();
    registered(h, "permanent", Some(third));
    assert_eq!(
        supervisor_reports(&reports, "permanent"),
        [
            (first, ExitReason::error("crash 1"), 0),
            (second, ExitReason::error("crash 2"), 1),
            (third, ExitReason::Normal, 2),
        ]
    );
    // The process reports came from the children themselves, for the crashes only.
    assert_eq!(reports_of(&reports, first).len(), 2);
    assert_eq!(reports_of(&reports, third).len(), 1);

    // A transient child's shutdown is not reported; its crash is.
    let transient = registered(h, "transient", None);
    let watch = h.watch(transient);
    h.send_named("transient", ExitReason::Shutdown).unwrap();
    watch.wait();
    // The supervisor has handled the exit when it answers a request.
    rt.block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
        .unwrap()
        .unwrap();
    assert_eq!(supervisor_reports(&reports, "transient"), []);
}

#[test]
fn off_reports_nothing() {
    let rt = Runtime::builder()
        .threads(2)
        .crash_reports(CrashReports::Off)
        .build();
    let log = captured();
    let before = log.lock().unwrap().len();
    let pid = exit_with(rt.handle(), ExitReason::error("silent"));
    let text = String::from_utf8(log.lock().unwrap()[before..].to_vec()).unwrap();
    assert!(!text.contains(&pid.to_string()), "{text}");
}

#[test]
fn a_hook_that_panics_does_not_stop_the_exit_it_reports() {
    let rt = Runtime::builder()
        .threads(2)
        .crash_reports(CrashReports::hook(|_| panic!("the hook is broken")))
        .build();
    let h = rt.handle();
    let watcher = h
        .spawn(|mut ctx: Ctx<()>| async move {
            ctx.trap_exit(true);
            let child = ctx
                .spawn_link(|_ctx: Ctx<()>| async move { ExitReason::error("reported") })
                .unwrap();
            match ctx.recv().await {
                Message::Exit(signal) if signal.from == child.pid() => signal.reason,
                _ => ExitReason::error("no exit signal"),
            }
        })
        .unwrap();
    // The link fired: the crashed process finished its exit, and both threads still run.
    assert_eq!(
        h.watch(watcher.pid()).wait_timeout(Duration::from_secs(10)),
        Some(ExitReason::error("reported"))
    );
    assert_eq!(rt.block_on(|_ctx: Ctx<()>| async { 7 }), Ok(7));
}

#[test]
fn a_supervisor_reports_a_failed_start_and_giving_up() {
    let (rt, reports) = hooked();
    let h = rt.handle();
    let starts = Arc::new(Mutex::new(0));
    let counted = Arc::clone(&starts);
    // Starts once, then fails to start: the restart after its crash is retried (each try a
    // start error) until the intensity is spent.
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(60))
        .child(ChildSpec::worker("flaky", move |start| {
            let mut starts = counted.lock().unwrap();
            *starts += 1;
            if *starts > 1 {
                return Err(ExitReason::error("no disk"));
            }
            start.spawn(|mut ctx: Ctx<ExitReason>| async move {
                ctx.register("flaky").unwrap();
                match ctx.recv().await {
                    Message::User(reason) => reason,
                    _ => ExitReason::Normal,
                }
            })
        }));
    let sup = Supervisor::start(h, spec).unwrap();
    let watch = h.watch(sup.pid());
    registered(h, "flaky", None);
    h.send_named("flaky", ExitReason::error("crash")).unwrap();
    assert_eq!(watch.wait(), ExitReason::Shutdown);
    let reports = reports.lock().unwrap();
    let of_sup: Vec<_> = reports.iter().filter(|r| r.pid == sup.pid()).collect();
    let start_errors = of_sup
        .iter()
        .filter(|r| matches!(&r.source, CrashSource::StartError { child } if child == "flaky"))
        .count();
    assert_eq!(start_errors, 2, "{of_sup:?}");
    assert!(
        of_sup.iter().any(
            |r| matches!(&r.source, CrashSource::IntensityReached { child } if child == "flaky")
                && r.reason == ExitReason::error("crash")
        ),
        "{of_sup:?}"
    );
}
