//! The workloads on baobab (2 scheduler threads, the machine's cores).

use std::time::{Duration, Instant};

use baobab::server::ReplyTo;
use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use baobab::{Addr, Ctx, Message, Runtime};

use crate::{Figure, resident_bytes, size};

pub fn run(workload: &str) -> Figure {
    let rt = Runtime::new();
    let figure = match workload {
        "spawn" => spawn(&rt),
        "ping-pong" => ping_pong(&rt),
        "ring" => ring(&rt),
        "fan-in" => fan_in(&rt),
        "restart" => restart(&rt),
        other => panic!("unknown workload {other}"),
    };
    std::mem::forget(rt); // the process ends here; skip shutting down a million processes
    figure
}

fn spawn(rt: &Runtime) -> Figure {
    let n = size("SPAWN_N", 1_000_000);
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        let before = resident_bytes();
        let start = Instant::now();
        let mut all = Vec::with_capacity(n);
        for _ in 0..n {
            all.push(
                ctx.spawn(|mut c: Ctx<()>| async move {
                    c.recv().await;
                })
                .unwrap(),
            );
        }
        let elapsed = start.elapsed();
        ctx.sleep(Duration::from_millis(200)).await;
        let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
        Figure {
            bytes: Some(bytes),
            ..Figure::per(elapsed, n)
        }
    })
    .unwrap()
}

/// The request carries the reply address; the reply comes back through `Ctx::call`.
fn ping_pong(rt: &Runtime) -> Figure {
    let n = size("PINGPONG_N", 500_000);
    rt.block_on(move |mut ctx: Ctx<()>| async move {
        let server = ctx
            .spawn(|mut ctx: Ctx<(u64, ReplyTo<u64>)>| async move {
                while let Message::User((n, reply_to)) = ctx.recv().await {
                    reply_to.reply(n + 1);
                }
            })
            .unwrap();
        let start = Instant::now();
        for i in 0..n as u64 {
            ctx.call(&server, |r| (i, r), Duration::from_secs(5))
                .await
                .unwrap();
        }
        Figure::per(start.elapsed(), n)
    })
    .unwrap()
}

fn ring(rt: &Runtime) -> Figure {
    let (size_r, laps) = (size("RING_SIZE", 10_000), size("RING_LAPS", 100));
    let hops = size_r * laps;
    rt.block_on(move |mut ctx: Ctx<u64>| async move {
        let mut next: Addr<u64> = ctx.addr();
        for _ in 0..size_r - 1 {
            let to = next;
            next = ctx
                .spawn(move |mut c: Ctx<u64>| async move {
                    while let Message::User(token) = c.recv().await {
                        c.send(&to, token.saturating_sub(1)).unwrap();
                        if token == 0 {
                            break;
                        }
                    }
                })
                .unwrap();
        }
        let start = Instant::now();
        ctx.send(&next, hops as u64).unwrap();
        while let Message::User(token) = ctx.recv().await {
            if token == 0 {
                break;
            }
            ctx.send(&next, token - 1).unwrap();
        }
        Figure::per(start.elapsed(), hops)
    })
    .unwrap()
}

fn fan_in(rt: &Runtime) -> Figure {
    let (senders, each) = (size("FANIN_SENDERS", 1_000), size("FANIN_MESSAGES", 1_000));
    rt.block_on(move |mut ctx: Ctx<u64>| async move {
        let me = ctx.addr();
        let start = Instant::now();
        for _ in 0..senders {
            ctx.spawn(move |c: Ctx<()>| async move {
                for n in 0..each as u64 {
                    c.send(&me, n).unwrap();
                }
            })
            .unwrap();
        }
        for _ in 0..senders * each {
            ctx.recv().await;
        }
        Figure::per(start.elapsed(), senders * each)
    })
    .unwrap()
}

enum Cmd {
    Crash,
    Ping(ReplyTo<()>),
}

/// A permanent child under a one-for-one supervisor panics; time until the restarted child
/// answers a call. Each child announces its address to the driver when it starts.
fn restart(rt: &Runtime) -> Figure {
    let n = size("RESTART_N", 20_000);
    std::panic::set_hook(Box::new(|_| {}));
    rt.block_on(move |mut ctx: Ctx<Addr<Cmd>>| async move {
        let me = ctx.addr();
        let child = ChildSpec::worker("child", move |start| {
            start.spawn(move |mut ctx: Ctx<Cmd>| async move {
                ctx.send(&me, ctx.addr()).unwrap();
                while let Message::User(cmd) = ctx.recv().await {
                    match cmd {
                        Cmd::Crash => panic!("crash"),
                        Cmd::Ping(reply) => reply.reply(()),
                    }
                }
            })
        });
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(u32::MAX, Duration::from_secs(3600))
            .child(child);
        Supervisor::start_link(&mut ctx, spec).await.unwrap();
        let mut addr = ctx.recv().await.user().unwrap();
        let start = Instant::now();
        for _ in 0..n {
            ctx.send(&addr, Cmd::Crash).unwrap();
            addr = ctx.recv().await.user().unwrap();
            ctx.call(&addr, Cmd::Ping, Duration::from_secs(5))
                .await
                .unwrap();
        }
        Figure::per(start.elapsed(), n)
    })
    .unwrap()
}
