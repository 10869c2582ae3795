//! The OTP rules for exit signals, links, monitors and names (DESIGN.md §4), one test each.

mod common;

use std::time::Duration;

use baobab::{Ctx, Down, ExitReason, ExitSignal, Message};
use common::{SAFETY, exit_of, runtime};

/// A process that waits forever (until a signal ends it).
async fn idle(mut ctx: Ctx<()>) {
    while ctx.recv().await != Message::User(()) {}
}

/// A process that exits with `reason` when told.
async fn exits_when_told(mut ctx: Ctx<ExitReason>) -> ExitReason {
    loop {
        if let Message::User(reason) = ctx.recv().await {
            return reason;
        }
    }
}

#[test]
fn normal_exit_is_ignored_by_non_trapping_links() {
    let rt = runtime();
    let survived = rt.block_on(|mut ctx: Ctx<()>| async move {
        let child = ctx.spawn_link(|_c: Ctx<()>| async {}).unwrap();
        let monitor = ctx.monitor(child.pid());
        // The child's Down comes after its exit signal would have: we are still alive.
        matches!(ctx.recv().await, Message::Down(Down { reference, reason: ExitReason::Normal, .. }) if reference == monitor)
    });
    assert_eq!(survived, Ok(true));
}

#[test]
fn abnormal_reason_propagates_with_the_same_reason() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.spawn_monitor(|ctx: Ctx<()>| async move {
            ctx.spawn_link(|_c: Ctx<()>| async { ExitReason::error("boom") })
                .unwrap();
            idle(ctx).await;
        })
        .unwrap();
        ctx.recv().await
    });
    assert!(
        matches!(&got, Ok(Message::Down(d)) if d.reason == ExitReason::error("boom")),
        "{got:?}"
    );
}

#[test]
fn trap_exit_turns_exit_signals_into_messages() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.trap_exit(true);
        let normal = ctx.spawn_link(|_c: Ctx<()>| async {}).unwrap();
        let crash = ctx
            .spawn_link(|_c: Ctx<()>| async { ExitReason::error("crash") })
            .unwrap();
        let mut seen = vec![];
        for _ in 0..2 {
            if let Message::Exit(signal) = ctx.recv().await {
                seen.push(signal);
            }
        }
        seen.sort_by_key(|s| s.from);
        let mut want = vec![
            ExitSignal {
                from: normal.pid(),
                reason: ExitReason::Normal,
            },
            ExitSignal {
                from: crash.pid(),
                reason: ExitReason::error("crash"),
            },
        ];
        want.sort_by_key(|s| s.from);
        (seen, want)
    });
    let (seen, want) = got.unwrap();
    assert_eq!(seen, want);
}

#[test]
fn exit_kill_is_untrappable_and_links_see_killed() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.trap_exit(true);
        let victim = ctx
            .spawn_link(|ctx: Ctx<()>| async move {
                ctx.trap_exit(true);
                idle(ctx).await;
            })
            .unwrap();
        ctx.exit(victim.pid(), ExitReason::Kill);
        ctx.recv().await
    });
    assert!(
        matches!(
            got,
            Ok(Message::Exit(ExitSignal {
                reason: ExitReason::Killed,
                ..
            }))
        ),
        "{got:?}"
    );
}

#[test]
fn self_exit_with_kill_reaches_links_as_kill() {
    let rt = runtime();
    let h = rt.handle().clone();
    // A non-trapping middle process linked to a child that exits itself with `kill` dies
    // with `kill` (OTP: the link signal carries `kill` and is not converted to `killed`).
    let got = rt.block_on(move |mut ctx: Ctx<()>| async move {
        ctx.trap_exit(true);
        let middle = ctx
            .spawn_link(|ctx: Ctx<()>| async move {
                ctx.spawn_link(|c: Ctx<()>| async move {
                    let now = true;
                    if now {
                        c.stop(ExitReason::Kill)
                    }
                })
                .unwrap();
                idle(ctx).await;
            })
            .unwrap();
        let signal = ctx.recv().await;
        (middle, signal)
    });
    let (middle, signal) = got.unwrap();
    assert_eq!(
        signal,
        Message::Exit(ExitSignal {
            from: middle.pid(),
            reason: ExitReason::Kill
        })
    );
    assert!(!h.is_alive(middle.pid()));
}

#[test]
fn link_to_dead_pid_without_trap_exits_with_noproc() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (dead, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
        let _down = ctx.recv().await;
        ctx.link(dead.pid());
        "still alive"
    });
    assert_eq!(got, Err(ExitReason::NoProc));
}

#[test]
fn link_to_dead_pid_with_trap_delivers_noproc_message() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (dead, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
        let _down = ctx.recv().await;
        ctx.trap_exit(true);
        ctx.link(dead.pid());
        (dead.pid(), ctx.recv().await)
    });
    let (dead, message) = got.unwrap();
    assert_eq!(
        message,
        Message::Exit(ExitSignal {
            from: dead,
            reason: ExitReason::NoProc
        })
    );
}

#[test]
fn monitor_delivers_one_down_with_the_reason() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (child, reference) = ctx
            .spawn_monitor(|_c: Ctx<()>| async { ExitReason::error("bye") })
            .unwrap();
        let first = ctx.recv().await;
        let second = ctx.recv_timeout(Duration::from_millis(50)).await;
        (child.pid(), reference, first, second)
    });
    let (child, reference, first, second) = got.unwrap();
    assert_eq!(
        first,
        Message::Down(Down {
            reference,
            pid: child,
            reason: ExitReason::error("bye")
        })
    );
    assert_eq!(second, None, "exactly one Down");
}

#[test]
fn monitor_of_dead_pid_delivers_noproc_down() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (dead, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
        let _ = ctx.recv().await;
        let reference = ctx.monitor(dead.pid());
        (reference, dead.pid(), ctx.recv().await)
    });
    let (reference, dead, message) = got.unwrap();
    assert_eq!(
        message,
        Message::Down(Down {
            reference,
            pid: dead,
            reason: ExitReason::NoProc
        })
    );
}

#[test]
fn demonitor_with_flush_removes_a_queued_down() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let (dead, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
        let _ = ctx.recv().await;
        // The Down for this monitor is queued at once (noproc); flush takes it back.
        let reference = ctx.monitor(dead.pid());
        let was_active = ctx.demonitor(reference, true);
        (
            was_active,
            ctx.recv_timeout(Duration::from_millis(50)).await,
        )
    });
    assert_eq!(got, Ok((false, None)));
}

#[test]
fn demonitor_stops_a_future_down() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let child = ctx.spawn(exits_when_told).unwrap();
        let reference = ctx.monitor(child.pid());
        let was_active = ctx.demonitor(reference, false);
        ctx.send(&child, ExitReason::error("later")).unwrap();
        // A second monitor, set after, proves the child is gone before we look.
        ctx.monitor(child.pid());
        let first = ctx.recv().await;
        let second = ctx.recv_timeout(Duration::from_millis(50)).await;
        (
            was_active,
            matches!(first, Message::Down(d) if d.reference != reference),
            second,
        )
    });
    assert_eq!(got, Ok((true, true, None)));
}

#[test]
fn signals_between_a_pair_arrive_in_send_order() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<u32>| async move {
        ctx.trap_exit(true);
        let me = ctx.addr();
        let sender = ctx
            .spawn_link(move |ctx: Ctx<()>| async move {
                for n in 0..100 {
                    ctx.send(&me, n).unwrap();
                }
                ExitReason::error("done sending")
            })
            .unwrap();
        let mut seen = vec![];
        loop {
            match ctx.recv().await {
                Message::User(n) => seen.push(n),
                Message::Exit(signal) => {
                    assert_eq!(signal.from, sender.pid());
                    break;
                }
                Message::Down(_) => {}
            }
        }
        seen
    });
    assert_eq!(
        got.unwrap(),
        (0..100).collect::<Vec<_>>(),
        "all messages before the exit, in order"
    );
}

#[test]
fn registered_name_is_released_on_exit() {
    let rt = runtime();
    let h = rt.handle().clone();
    let named = h
        .spawn(|ctx: Ctx<ExitReason>| async move {
            ctx.register("worker").unwrap();
            exits_when_told(ctx).await
        })
        .unwrap();
    // Wait until the name is there (the process registers itself as it starts).
    let started = std::time::Instant::now();
    while h.whereis_pid("worker").is_none() {
        assert!(started.elapsed() < SAFETY, "never registered");
        std::thread::yield_now();
    }
    assert_eq!(h.whereis::<ExitReason>("worker"), Some(named));
    h.send(&named, ExitReason::Normal).unwrap();
    exit_of(&h, named.pid());
    assert_eq!(h.whereis_pid("worker"), None);
    assert_eq!(h.registered_names(), 0);
}

#[test]
fn exit_normal_to_a_non_trapping_process_does_nothing() {
    let rt = runtime();
    let h = rt.handle().clone();
    let target = h.spawn(exits_when_told).unwrap();
    let watch = h.watch(target.pid());
    h.exit(target.pid(), ExitReason::Normal);
    assert_eq!(watch.wait_timeout(Duration::from_millis(100)), None);
    assert!(h.is_alive(target.pid()));
    h.send(&target, ExitReason::shutdown_with("test over"))
        .unwrap();
    assert_eq!(
        watch.wait_timeout(SAFETY),
        Some(ExitReason::shutdown_with("test over"))
    );
}

#[test]
fn exit_normal_to_a_trapping_process_delivers_an_exit_message() {
    let rt = runtime();
    let reported = rt.block_on(move |mut ctx: Ctx<Option<ExitSignal>>| async move {
        let me = ctx.addr();
        let trapper = ctx
            .spawn(move |mut ctx: Ctx<()>| async move {
                ctx.trap_exit(true);
                ctx.send(&me, None).unwrap();
                if let Message::Exit(signal) = ctx.recv().await {
                    ctx.send(&me, Some(signal)).unwrap();
                }
            })
            .unwrap();
        let _ready = ctx.recv().await;
        ctx.exit(trapper.pid(), ExitReason::Normal);
        (ctx.pid(), ctx.recv().await)
    });
    let (driver, message) = reported.unwrap();
    assert_eq!(
        message,
        Message::User(Some(ExitSignal {
            from: driver,
            reason: ExitReason::Normal
        }))
    );
}

#[test]
fn exit_self_normal_ends_the_caller() {
    let rt = runtime();
    let got = rt.block_on(|ctx: Ctx<()>| async move {
        ctx.exit(ctx.pid(), ExitReason::Normal);
        "kept running"
    });
    assert_eq!(got, Err(ExitReason::Normal));
}

#[test]
fn unlink_prevents_the_exit_signal() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let child = ctx.spawn_link(exits_when_told).unwrap();
        ctx.unlink(child.pid());
        let reference = ctx.monitor(child.pid());
        ctx.send(&child, ExitReason::error("crash")).unwrap();
        // We are not linked any more: the crash reaches us only as the monitor's Down.
        matches!(ctx.recv().await, Message::Down(d) if d.reference == reference)
    });
    assert_eq!(got, Ok(true));
}

#[test]
fn panic_becomes_exit_reason_panic_seen_by_links() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.trap_exit(true);
        ctx.spawn_link(|_c: Ctx<()>| async move {
            let fail = true;
            if fail {
                panic!("handler bug");
            }
        })
        .unwrap();
        ctx.recv().await
    });
    assert!(
        matches!(&got, Ok(Message::Exit(ExitSignal { reason: ExitReason::Panic(m), .. })) if &**m == "handler bug"),
        "{got:?}"
    );
}

#[test]
fn spawn_link_is_atomic_with_an_instantly_crashing_child() {
    let rt = runtime();
    // The child may crash before `spawn_link` even returns: the link is there already, so the
    // parent always dies with the child's reason.
    let reasons = rt.block_on(|mut ctx: Ctx<()>| async move {
        let mut reasons = vec![];
        for _ in 0..200 {
            let (_parent, _) = ctx
                .spawn_monitor(|ctx: Ctx<()>| async move {
                    ctx.spawn_link(|_c: Ctx<()>| async { ExitReason::error("instant") })
                        .unwrap();
                    idle(ctx).await;
                })
                .unwrap();
            if let Message::Down(down) = ctx.recv().await {
                reasons.push(down.reason);
            }
        }
        reasons
    });
    let reasons = reasons.unwrap();
    assert_eq!(reasons.len(), 200);
    assert!(
        reasons.iter().all(|r| *r == ExitReason::error("instant")),
        "{reasons:?}"
    );
}

#[test]
fn spawn_monitor_of_an_instantly_dying_child_gets_down() {
    let rt = runtime();
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        let mut ok = 0;
        for _ in 0..200 {
            let (child, reference) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
            if let Message::Down(down) = ctx.recv().await
                && down.reference == reference
                && down.pid == child.pid()
            {
                ok += 1;
            }
        }
        ok
    });
    assert_eq!(got, Ok(200));
}

#[test]
fn stale_pid_never_reaches_a_new_process() {
    let rt = runtime();
    let h = rt.handle().clone();
    let old = h.spawn(exits_when_told).unwrap();
    h.send(&old, ExitReason::Normal).unwrap();
    exit_of(&h, old.pid());
    // Reuse the slot: spawn until a process gets the same index.
    let mut reused = None;
    for _ in 0..1000 {
        let new = h.spawn(exits_when_told).unwrap();
        if new.pid().index() == old.pid().index() {
            reused = Some(new);
            break;
        }
    }
    let new = reused.expect("slot reused");
    assert_ne!(new.pid(), old.pid());
    assert!(!h.is_alive(old.pid()));
    let dropped_before = h.stats().messages_dropped;
    h.send(&old, ExitReason::error("to the old one")).unwrap();
    assert_eq!(h.stats().messages_dropped, dropped_before + 1);
    assert!(
        h.is_alive(new.pid()),
        "the message to the stale pid did not reach the new process"
    );
    assert_eq!(h.process_info(new.pid()).unwrap().mailbox_len, 0);
}

#[test]
fn crash_propagates_along_a_chain_of_links() {
    let rt = runtime();
    // a - b - c: c crashes, b and a die with its reason.
    let got = rt.block_on(|mut ctx: Ctx<()>| async move {
        ctx.spawn_monitor(|ctx: Ctx<()>| async move {
            ctx.spawn_link(|ctx: Ctx<()>| async move {
                ctx.spawn_link(|_c: Ctx<()>| async { ExitReason::error("c failed") })
                    .unwrap();
                idle(ctx).await;
            })
            .unwrap();
            idle(ctx).await;
        })
        .unwrap();
        ctx.recv().await
    });
    assert!(
        matches!(&got, Ok(Message::Down(d)) if d.reason == ExitReason::error("c failed")),
        "{got:?}"
    );
}

#[test]
fn a_trapping_middle_process_stops_the_chain() {
    let rt = runtime();
    let h = rt.handle().clone();
    let got = rt.block_on(|mut ctx: Ctx<ExitSignal>| async move {
        let me = ctx.addr();
        // The middle process traps: the crash below it becomes a message, which it reports.
        let middle = ctx
            .spawn_link(move |mut ctx: Ctx<()>| async move {
                ctx.trap_exit(true);
                ctx.spawn_link(|_c: Ctx<()>| async { ExitReason::error("leaf") })
                    .unwrap();
                if let Message::Exit(signal) = ctx.recv().await {
                    ctx.send(&me, signal).unwrap();
                }
                idle(ctx).await;
            })
            .unwrap();
        (middle, ctx.recv().await)
    });
    let (middle, report) = got.unwrap();
    assert!(
        matches!(&report, Message::User(signal) if signal.reason == ExitReason::error("leaf")),
        "{report:?}"
    );
    // The driver exited normally when block_on returned; the middle process ignores that.
    assert!(h.is_alive(middle.pid()));
}
