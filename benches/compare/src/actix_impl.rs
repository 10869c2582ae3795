//! The workloads on actix (one System, one arbiter thread: how actix runs actors).

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::{Figure, resident_bytes, size};

pub fn run(workload: &str) -> Figure {
    let workload = workload.to_owned();
    System::new().block_on(async move {
        match workload.as_str() {
            "spawn" => spawn().await,
            "ping-pong" => ping_pong().await,
            "ring" => ring().await,
            "fan-in" => fan_in().await,
            other => panic!("unknown workload {other}"),
        }
    })
}

struct Idle;

impl Actor for Idle {
    type Context = Context<Self>;
}

async fn spawn() -> Figure {
    let n = size("SPAWN_N", 100_000);
    let before = resident_bytes();
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(Idle.start());
    }
    let elapsed = start.elapsed();
    actix::clock::sleep(Duration::from_millis(200)).await;
    let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
    Figure {
        bytes: Some(bytes),
        ..Figure::per(elapsed, n)
    }
}

struct Ping(u64);

impl Message for Ping {
    type Result = u64;
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, Ping(n): Ping, _: &mut Context<Self>) -> u64 {
        n + 1
    }
}

async fn ping_pong() -> Figure {
    let n = size("PINGPONG_N", 200_000);
    let echo = Echo.start();
    let start = Instant::now();
    for i in 0..n as u64 {
        echo.send(Ping(i)).await.unwrap();
    }
    Figure::per(start.elapsed(), n)
}

struct Token(u64);

impl Message for Token {
    type Result = ();
}

struct SetNext(Addr<Member>);

impl Message for SetNext {
    type Result = ();
}

struct Member {
    next: Option<Addr<Member>>,
    done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Actor for Member {
    type Context = Context<Self>;
}

impl Handler<SetNext> for Member {
    type Result = ();
    fn handle(&mut self, SetNext(next): SetNext, _: &mut Context<Self>) {
        self.next = Some(next);
    }
}

impl Handler<Token> for Member {
    type Result = ();
    fn handle(&mut self, Token(n): Token, _: &mut Context<Self>) {
        if n == 0 {
            let _ = self.done.send(());
        } else {
            self.next
                .as_ref()
                .expect("ring closed")
                .do_send(Token(n - 1));
        }
    }
}

async fn ring() -> Figure {
    let (size_r, laps) = (size("RING_SIZE", 10_000), size("RING_LAPS", 100));
    let hops = size_r * laps;
    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let members: Vec<Addr<Member>> = (0..size_r)
        .map(|_| {
            Member {
                next: None,
                done: done_tx.clone(),
            }
            .start()
        })
        .collect();
    for (i, member) in members.iter().enumerate() {
        member.do_send(SetNext(members[(i + 1) % size_r].clone()));
    }
    let start = Instant::now();
    members[0].do_send(Token(hops as u64));
    done.recv().await;
    Figure::per(start.elapsed(), hops)
}

struct Sink {
    left: usize,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Token> for Sink {
    type Result = ();
    fn handle(&mut self, _: Token, _: &mut Context<Self>) {
        self.left -= 1;
        if self.left == 0 {
            let _ = self.done.take().map(|d| d.send(()));
        }
    }
}

struct Sender {
    sink: Addr<Sink>,
    each: usize,
}

impl Actor for Sender {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        for n in 0..self.each as u64 {
            self.sink.do_send(Token(n));
        }
        ctx.stop();
    }
}

async fn fan_in() -> Figure {
    let (senders, each) = (size("FANIN_SENDERS", 1_000), size("FANIN_MESSAGES", 1_000));
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let sink = Sink {
        left: senders * each,
        done: Some(done_tx),
    }
    .start();
    let start = Instant::now();
    for _ in 0..senders {
        Sender {
            sink: sink.clone(),
            each,
        }
        .start();
    }
    done.await.unwrap();
    Figure::per(start.elapsed(), senders * each)
}
