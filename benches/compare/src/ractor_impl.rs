//! The workloads on ractor (tokio multi-thread runtime, one worker per core).

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::mpsc;

use crate::{Figure, resident_bytes, size};

pub fn run(workload: &str) -> Figure {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    // The driver is a task on a worker thread, not the thread that started the runtime.
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
    type Msg = ();
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

async fn spawn() -> Figure {
    let n = size("SPAWN_N", 100_000);
    let before = resident_bytes();
    let start = Instant::now();
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(Actor::spawn(None, Idle, ()).await.unwrap());
    }
    let elapsed = start.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bytes = resident_bytes().saturating_sub(before) as f64 / n as f64;
    Figure {
        bytes: Some(bytes),
        ..Figure::per(elapsed, n)
    }
}

enum Ping {
    Ask(u64, RpcReplyPort<u64>),
}

struct Echo;

impl Actor for Echo {
    type Msg = Ping;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<Ping>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<Ping>,
        Ping::Ask(n, reply): Ping,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}

async fn ping_pong() -> Figure {
    let n = size("PINGPONG_N", 200_000);
    let (echo, _) = Actor::spawn(None, Echo, ()).await.unwrap();
    let start = Instant::now();
    for i in 0..n as u64 {
        echo.call(|reply| Ping::Ask(i, reply), None).await.unwrap();
    }
    Figure::per(start.elapsed(), n)
}

enum RingMsg {
    SetNext(ActorRef<RingMsg>),
    Token(u64),
}

struct Member;

struct MemberState {
    next: Option<ActorRef<RingMsg>>,
    done: mpsc::UnboundedSender<()>,
}

impl Actor for Member {
    type Msg = RingMsg;
    type State = MemberState;
    type Arguments = mpsc::UnboundedSender<()>;
    async fn pre_start(
        &self,
        _: ActorRef<RingMsg>,
        done: Self::Arguments,
    ) -> Result<MemberState, ActorProcessingErr> {
        Ok(MemberState { next: None, done })
    }
    async fn handle(
        &self,
        _: ActorRef<RingMsg>,
        message: RingMsg,
        state: &mut MemberState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RingMsg::SetNext(next) => state.next = Some(next),
            RingMsg::Token(0) => {
                let _ = state.done.send(());
            }
            RingMsg::Token(n) => {
                let _ = state
                    .next
                    .as_ref()
                    .expect("ring closed")
                    .send_message(RingMsg::Token(n - 1));
            }
        }
        Ok(())
    }
}

async fn ring() -> Figure {
    let (size_r, laps) = (size("RING_SIZE", 10_000), size("RING_LAPS", 100));
    let hops = size_r * laps;
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let mut members = Vec::with_capacity(size_r);
    for _ in 0..size_r {
        members.push(Actor::spawn(None, Member, done_tx.clone()).await.unwrap().0);
    }
    for (i, member) in members.iter().enumerate() {
        member
            .send_message(RingMsg::SetNext(members[(i + 1) % size_r].clone()))
            .unwrap();
    }
    let start = Instant::now();
    members[0]
        .send_message(RingMsg::Token(hops as u64))
        .unwrap();
    done.recv().await;
    Figure::per(start.elapsed(), hops)
}

struct Sink;

struct SinkState {
    left: usize,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Actor for Sink {
    type Msg = u64;
    type State = SinkState;
    type Arguments = (usize, tokio::sync::oneshot::Sender<()>);
    async fn pre_start(
        &self,
        _: ActorRef<u64>,
        (left, done): Self::Arguments,
    ) -> Result<SinkState, ActorProcessingErr> {
        Ok(SinkState {
            left,
            done: Some(done),
        })
    }
    async fn handle(
        &self,
        _: ActorRef<u64>,
        _: u64,
        state: &mut SinkState,
    ) -> Result<(), ActorProcessingErr> {
        state.left -= 1;
        if state.left == 0 {
            let _ = state.done.take().map(|d| d.send(()));
        }
        Ok(())
    }
}

async fn fan_in() -> Figure {
    let (senders, each) = (size("FANIN_SENDERS", 1_000), size("FANIN_MESSAGES", 1_000));
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let (sink, _) = Actor::spawn(None, Sink, (senders * each, done_tx))
        .await
        .unwrap();
    let start = Instant::now();
    for _ in 0..senders {
        let sink = sink.clone();
        tokio::spawn(async move {
            for n in 0..each as u64 {
                let _ = sink.send_message(n);
            }
        });
    }
    done.await.unwrap();
    Figure::per(start.elapsed(), senders * each)
}

// ---- restart: a supervisor actor that respawns its child when it fails (ractor's own
// supervision events; ractor has no built-in restart policy)

enum ChildMsg {
    Crash,
    Ping(RpcReplyPort<()>),
}

struct Fragile;

impl Actor for Fragile {
    type Msg = ChildMsg;
    type State = ();
    type Arguments = ();
    async fn pre_start(&self, _: ActorRef<ChildMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _: ActorRef<ChildMsg>,
        message: ChildMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ChildMsg::Crash => panic!("crash"),
            ChildMsg::Ping(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

struct Boss;

impl Actor for Boss {
    type Msg = ();
    type State = mpsc::UnboundedSender<ActorRef<ChildMsg>>;
    type Arguments = mpsc::UnboundedSender<ActorRef<ChildMsg>>;
    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        children: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(None, Fragile, (), myself.get_cell()).await?;
        let _ = children.send(child);
        Ok(children)
    }
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: ractor::SupervisionEvent,
        children: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let ractor::SupervisionEvent::ActorFailed(..) = event {
            let (child, _) = Actor::spawn_linked(None, Fragile, (), myself.get_cell()).await?;
            let _ = children.send(child);
        }
        Ok(())
    }
}

/// The child panics; time until the respawned child answers a call.
async fn restart() -> Figure {
    let n = size("RESTART_N", 20_000);
    std::panic::set_hook(Box::new(|_| {}));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (_boss, _) = Actor::spawn(None, Boss, tx).await.unwrap();
    let mut child = rx.recv().await.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        let _ = child.cast(ChildMsg::Crash);
        child = rx.recv().await.unwrap();
        child.call(ChildMsg::Ping, None).await.unwrap();
    }
    Figure::per(start.elapsed(), n)
}
