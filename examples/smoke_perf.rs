//! Quick figures while developing (the real benchmarks are `cargo bench --bench runtime`).
//! `cargo run --release --example smoke_perf [call|ring|spawn]`, env T=threads, N=spawns.

use std::time::{Duration, Instant};

use baobab::server::ReplyTo;
use baobab::{Addr, Ctx, Message, Runtime};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<usize>()
        .unwrap()
        * 4096
}

fn call(rt: &Runtime) {
    let n = env("N", 200_000) as u32;
    let t = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let server = ctx
                .spawn(|mut ctx: Ctx<(u32, ReplyTo<u32>)>| async move {
                    while let Message::User((x, r)) = ctx.recv().await {
                        r.reply(x + 1);
                    }
                })
                .unwrap();
            let start = Instant::now();
            for i in 0..n {
                ctx.call(&server, |r| (i, r), Duration::from_secs(5))
                    .await
                    .unwrap();
            }
            start.elapsed()
        })
        .unwrap();
    println!("call rtt {:?}", t / n);
}

fn pingpong(rt: &Runtime) {
    let n = env("N", 200_000) as u32;
    let t = rt
        .block_on(move |mut ctx: Ctx<u32>| async move {
            let me = ctx.addr();
            let server = ctx
                .spawn(move |mut ctx: Ctx<u32>| async move {
                    while let Message::User(x) = ctx.recv().await {
                        ctx.send(&me, x + 1).unwrap();
                    }
                })
                .unwrap();
            let start = Instant::now();
            for i in 0..n {
                ctx.send(&server, i).unwrap();
                ctx.recv().await;
            }
            start.elapsed()
        })
        .unwrap();
    println!("ping-pong rtt {:?}", t / n);
}

fn ring(rt: &Runtime) {
    let (r, laps) = (10_000usize, 300usize);
    let t = rt
        .block_on(move |mut ctx: Ctx<u64>| async move {
            let mut next: Addr<u64> = ctx.addr();
            for _ in 0..r - 1 {
                let to = next;
                next = ctx
                    .spawn(move |mut c: Ctx<u64>| async move {
                        while let Message::User(x) = c.recv().await {
                            c.send(&to, x.saturating_sub(1)).unwrap();
                            if x == 0 {
                                break;
                            }
                        }
                    })
                    .unwrap();
            }
            let start = Instant::now();
            ctx.send(&next, (r * laps) as u64).unwrap();
            while let Message::User(x) = ctx.recv().await {
                if x == 0 {
                    break;
                }
                ctx.send(&next, x - 1).unwrap();
            }
            start.elapsed()
        })
        .unwrap();
    println!("ring hop {:?}", t / (r * laps) as u32);
}

fn spawn(rt: &Runtime) {
    let count = env("N", 200_000);
    let (t, bytes) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let before = rss();
            let start = Instant::now();
            let mut all = Vec::with_capacity(count);
            for _ in 0..count {
                all.push(
                    ctx.spawn(|mut c: Ctx<()>| async move {
                        c.recv().await;
                    })
                    .unwrap(),
                );
            }
            let elapsed = start.elapsed();
            ctx.sleep(Duration::from_millis(300)).await;
            (elapsed, (rss() - before) / count)
        })
        .unwrap();
    println!("spawn {:?}, {bytes} bytes/process", t / count as u32);
}

type Workload = (&'static str, fn(&Runtime));

fn main() {
    let rt = Runtime::builder().threads(env("T", 2)).build();
    let only = std::env::args().nth(1).unwrap_or_default();
    let all: [Workload; 4] = [
        ("call", call),
        ("pingpong", pingpong),
        ("ring", ring),
        ("spawn", spawn),
    ];
    for (name, run) in all {
        if only.is_empty() || only == name {
            run(&rt);
        }
    }
}
