//! A process that computes without awaiting holds its scheduler thread (scheduling is
//! cooperative). These tests check what the runtime still guarantees then, on two threads
//! with the system clock: timeouts and timers set on the busy thread fire on time, processes
//! queued there run elsewhere, and the long slice is reported with its pid.

mod common;

use std::time::{Duration, Instant};

use baobab::server::{CallError, ReplyTo};
use baobab::{Ctx, Message, Pid, Runtime};
use common::log::captured;

/// Spins for `time` without awaiting.
fn spin(time: Duration) {
    let end = Instant::now() + time;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

enum HogMsg {
    /// Spin for this long, then reply.
    Spin(Duration, Option<ReplyTo<()>>),
}

/// Spawns a process that spins when told to, and waits until it is ready: told by a message,
/// it is woken into the sender's own thread (its LIFO slot), so it then spins on the thread
/// of whoever told it.
async fn hog(ctx: &mut Ctx<Pid>) -> baobab::Addr<HogMsg> {
    let me = ctx.addr();
    let hog = ctx
        .spawn(move |mut ctx: Ctx<HogMsg>| async move {
            ctx.send(&me, ctx.pid()).unwrap();
            while let Message::User(HogMsg::Spin(time, reply)) = ctx.recv().await {
                spin(time);
                if let Some(reply) = reply {
                    reply.reply(());
                }
            }
        })
        .unwrap();
    let ready = ctx.recv().await.user().unwrap();
    assert_eq!(ready, hog.pid());
    hog
}

/// Sleeps `time`; how late the sleep ended.
async fn late_sleep<M: Send + 'static>(ctx: &mut Ctx<M>, time: Duration) -> Duration {
    let due = Instant::now() + time;
    ctx.sleep(time).await;
    Instant::now().saturating_duration_since(due)
}

fn two_threads() -> Runtime {
    Runtime::builder().threads(2).build()
}

#[test]
fn a_call_times_out_on_time_while_its_callee_spins_on_the_callers_thread() {
    let rt = two_threads();
    for _ in 0..3 {
        let (result, took) = rt
            .block_on(|mut ctx: Ctx<Pid>| async move {
                let hog = hog(&mut ctx).await;
                let start = Instant::now();
                // The request wakes the hog on this thread; the caller's timeout timer is a
                // lazy one on this thread too.
                let result = ctx
                    .call(
                        &hog,
                        |reply| HogMsg::Spin(Duration::from_millis(1000), Some(reply)),
                        Duration::from_millis(100),
                    )
                    .await;
                (result, start.elapsed())
            })
            .unwrap();
        assert_eq!(result, Err(CallError::Timeout));
        assert!(
            took < Duration::from_millis(400),
            "the 100 ms timeout fired after {took:?}"
        );
        // Let the hog finish before the next round.
        std::thread::sleep(Duration::from_millis(1000));
    }
}

#[test]
fn a_sleep_set_on_the_busy_thread_ends_on_time() {
    let rt = two_threads();
    let late = rt
        .block_on(|mut ctx: Ctx<Pid>| async move {
            let hog = hog(&mut ctx).await;
            ctx.send(&hog, HogMsg::Spin(Duration::from_millis(1000), None))
                .unwrap();
            let mut worst = Duration::ZERO;
            for _ in 0..20 {
                worst = worst.max(late_sleep(&mut ctx, Duration::from_millis(5)).await);
            }
            worst
        })
        .unwrap();
    assert!(
        late < Duration::from_millis(100),
        "a 5 ms sleep ended {late:?} late"
    );
}

#[test]
fn timers_of_many_processes_keep_firing_while_one_process_spins() {
    let rt = two_threads();
    let worst = rt
        .block_on(|mut ctx: Ctx<Pid>| async move {
            let hog = hog(&mut ctx).await;
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let end = Instant::now() + Duration::from_millis(600);
            for _ in 0..200 {
                let done = done_tx.clone();
                ctx.spawn(move |mut ctx: Ctx<()>| async move {
                    let mut worst = Duration::ZERO;
                    while Instant::now() < end {
                        worst = worst.max(late_sleep(&mut ctx, Duration::from_millis(1)).await);
                    }
                    done.send(worst).unwrap();
                })
                .unwrap();
            }
            ctx.sleep(Duration::from_millis(20)).await;
            ctx.send(&hog, HogMsg::Spin(Duration::from_millis(500), None))
                .unwrap();
            ctx.blocking(move || (0..200).map(|_| done_rx.recv().unwrap()).max().unwrap())
                .await
        })
        .unwrap();
    assert!(
        worst < Duration::from_millis(150),
        "a 1 ms sleep ended {worst:?} late"
    );
}

#[test]
fn processes_queued_on_the_busy_thread_run_on_the_other() {
    let rt = two_threads();
    let took = rt
        .block_on(|mut ctx: Ctx<Pid>| async move {
            let hog = hog(&mut ctx).await;
            let start = Instant::now();
            ctx.send(&hog, HogMsg::Spin(Duration::from_millis(1000), None))
                .unwrap();
            // Spawned here, they wait in this thread's queue behind the hog.
            for _ in 0..50 {
                let me = ctx.addr();
                ctx.spawn(move |ctx: Ctx<()>| async move {
                    ctx.send(&me, ctx.pid()).unwrap();
                })
                .unwrap();
            }
            for _ in 0..50 {
                ctx.recv().await.user().unwrap();
            }
            start.elapsed()
        })
        .unwrap();
    assert!(
        took < Duration::from_millis(500),
        "the queued processes ran after {took:?}"
    );
}

#[test]
fn a_long_slice_is_reported_with_its_pid_and_counted() {
    let log = captured();
    let rt = Runtime::builder()
        .threads(2)
        .long_schedule(Duration::from_millis(50))
        .build();
    let short = rt
        .handle()
        .spawn(|_ctx: Ctx<()>| async move { spin(Duration::from_millis(5)) })
        .unwrap();
    let watch = rt.handle().watch(short.pid());
    watch.wait_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(rt.handle().stats().long_schedules, 0);

    let long = rt
        .handle()
        .spawn(|_ctx: Ctx<()>| async move { spin(Duration::from_millis(300)) })
        .unwrap();
    let watch = rt.handle().watch(long.pid());
    watch.wait_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(rt.handle().stats().long_schedules, 1);
    let text = String::from_utf8(log.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|line| line.contains("long_schedule") && line.contains(&long.pid().to_string()))
        .unwrap_or_else(|| panic!("no long_schedule warning for {}: {text}", long.pid()));
    assert!(line.contains("WARN"), "{line}");
    let ms: u64 = line
        .split("ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no ms field: {line}"));
    assert!((200..=2000).contains(&ms), "reported {ms} ms: {line}");
}
