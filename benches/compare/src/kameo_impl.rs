//! The workloads on kameo (tokio multi-thread runtime, one worker per core).

use std::time::{Duration, Instant};

use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use tokio::sync::mpsc;

use crate::{Figure, resident_bytes, size};

pub fn run(workload: &str) -> Figure {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let workload = workload.to_owned();
    rt.block_on(async move {
        tokio::spawn(async move { run_async(&workload).await })
            .await
            .unwrap()
    })
}

async fn run_async(workload: &str) -> Figure {
    match workload {
        "spawn" => spawn().await,
        "ping-pong" => ping_pong().await,
        "ring" => ring().await,
        "fan-in" => fan_in().await,
        "restart" => restart().await,
        other => panic!("unknown workload {other}"),
    }
}

struct Idle;

impl Actor for Idle {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

async fn spawn() -> Figure {
    let n = size("SPAWN_N", 100_000);
    let before = resident_bytes();
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(Idle::spawn(Idle));
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
    Figure {
        bytes: Some(bytes),
        ..Figure::per(elapsed, n)
    }
}

struct Echo;

impl Actor for Echo {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

impl Message<u64> for Echo {
    type Reply = u64;
    async fn handle(&mut self, n: u64, _: &mut Context<Self, u64>) -> u64 {
        n + 1
    }
}

async fn ping_pong() -> Figure {
    let n = size("PINGPONG_N", 200_000);
    let echo = Echo::spawn(Echo);
    let start = Instant::now();
    for i in 0..n as u64 {
        echo.ask(i).await.unwrap();
    }
    Figure::per(start.elapsed(), n)
}

struct Member {
    next: Option<ActorRef<Member>>,
    done: mpsc::UnboundedSender<()>,
}

impl Actor for Member {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct SetNext(ActorRef<Member>);

impl Message<SetNext> for Member {
    type Reply = ();
    async fn handle(&mut self, SetNext(next): SetNext, _: &mut Context<Self, ()>) {
        self.next = Some(next);
    }
}

struct Token(u64);

impl Message<Token> for Member {
    type Reply = ();
    async fn handle(&mut self, Token(n): Token, _: &mut Context<Self, ()>) {
        if n == 0 {
            let _ = self.done.send(());
        } else {
            let _ = self
                .next
                .as_ref()
                .expect("ring closed")
                .tell(Token(n - 1))
                .try_send();
        }
    }
}

async fn ring() -> Figure {
    let (size_r, laps) = (size("RING_SIZE", 10_000), size("RING_LAPS", 100));
    let hops = size_r * laps;
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let members: Vec<ActorRef<Member>> = (0..size_r)
        .map(|_| {
            Member::spawn(Member {
                next: None,
                done: done_tx.clone(),
            })
        })
        .collect();
    for (i, member) in members.iter().enumerate() {
        member
            .tell(SetNext(members[(i + 1) % size_r].clone()))
            .await
            .unwrap();
    }
    let start = Instant::now();
    members[0].tell(Token(hops as u64)).await.unwrap();
    done.recv().await;
    Figure::per(start.elapsed(), hops)
}

struct Sink {
    left: usize,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for Sink {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

impl Message<u64> for Sink {
    type Reply = ();
    async fn handle(&mut self, _: u64, _: &mut Context<Self, ()>) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.take().map(|d| d.send(()));
        }
    }
}

async fn fan_in() -> Figure {
    let (senders, each) = (size("FANIN_SENDERS", 1_000), size("FANIN_MESSAGES", 1_000));
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let sink = Sink::spawn(Sink {
        left: senders * each,
        done: Some(done_tx),
    });
    let start = Instant::now();
    for _ in 0..senders {
        let sink = sink.clone();
        tokio::spawn(async move {
            for n in 0..each as u64 {
                sink.tell(n).await.unwrap();
            }
        });
    }
    done.await.unwrap();
    Figure::per(start.elapsed(), senders * each)
}

// ---- restart: kameo's own supervision (the ActorRef stays valid across restarts)

struct Boss;

impl Actor for Boss {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

#[derive(Clone)]
struct Fragile;

impl Actor for Fragile {
    type Args = Self;
    type Error = Infallible;
    async fn on_start(state: Self, _: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Crash;

impl Message<Crash> for Fragile {
    type Reply = ();
    async fn handle(&mut self, _: Crash, _: &mut Context<Self, ()>) {
        panic!("crash");
    }
}

struct Ping;

impl Message<Ping> for Fragile {
    type Reply = ();
    async fn handle(&mut self, _: Ping, _: &mut Context<Self, ()>) {}
}

/// A permanent child under a one-for-one supervisor panics; time until the restarted child
/// answers an ask.
async fn restart() -> Figure {
    let n = size("RESTART_N", 20_000);
    std::panic::set_hook(Box::new(|_| {}));
    let boss = Boss::spawn(Boss);
    let child = Fragile::supervise(&boss, Fragile)
        .restart_limit(u32::MAX, Duration::from_secs(3600))
        .spawn()
        .await;
    child.ask(Ping).await.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let _ = child.tell(Crash).await;
        while child.ask(Ping).await.is_err() {
            tokio::task::yield_now().await;
        }
    }
    Figure::per(start.elapsed(), n)
}
