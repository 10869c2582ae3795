//! A state-machine test of the signal rules: random sequences of spawn, link, unlink,
//! monitor, trap_exit, exit (normal, an error, kill), self-exit and send over a handful of
//! "puppet" processes run on baobab and on a small reference model of the OTP rules; after
//! every step the set of live processes and what each one received must agree.

mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baobab::{Addr, Ctx, ExitReason, Handle, Message, Pid, Runtime};
use common::SAFETY;
use proptest::prelude::*;

const MAX_PUPPETS: usize = 5;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Exit { from: usize, reason: String },
    Down { of: usize, reason: String },
    Note(u32),
}

#[derive(Clone, Debug)]
enum Reason {
    Normal,
    Error,
    Kill,
}

impl Reason {
    fn exit_reason(&self) -> ExitReason {
        match self {
            Reason::Normal => ExitReason::Normal,
            Reason::Error => ExitReason::error("boom"),
            Reason::Kill => ExitReason::Kill,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Spawn,
    Link(usize, usize),
    Unlink(usize, usize),
    Monitor(usize, usize),
    Trap(usize, bool),
    Exit(usize, usize, Reason),
    Stop(usize, Reason),
    Send(usize, usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0..MAX_PUPPETS;
    let reason = prop_oneof![
        Just(Reason::Normal),
        Just(Reason::Error),
        Just(Reason::Kill)
    ];
    prop_oneof![
        1 => Just(Op::Spawn),
        3 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Unlink(a, b)),
        2 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Monitor(a, b)),
        2 => (who.clone(), any::<bool>()).prop_map(|(a, t)| Op::Trap(a, t)),
        3 => (who.clone(), who.clone(), reason.clone()).prop_map(|(a, b, r)| Op::Exit(a, b, r)),
        1 => (who.clone(), reason).prop_map(|(a, r)| Op::Stop(a, r)),
        1 => (who.clone(), who, 0..100u32).prop_map(|(a, b, n)| Op::Send(a, b, n)),
    ]
}

// ------------------------------------------------------------------ the reference model

#[derive(Default)]
struct Model {
    alive: Vec<bool>,
    trap: Vec<bool>,
    links: BTreeSet<(usize, usize)>,
    /// (watcher, target) of each active monitor.
    monitors: Vec<(usize, usize)>,
    log: Vec<Vec<Event>>,
    /// Who died, and why, in this step.
    died: Vec<(usize, String)>,
}

impl Model {
    fn spawn(&mut self) {
        self.alive.push(true);
        self.trap.push(false);
        self.log.push(vec![]);
    }

    fn link_key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    /// `x` dies with `reason`; its links and monitors hear of it, in cascade.
    fn die(&mut self, x: usize, reason: ExitReason) {
        let mut pending = vec![(x, reason)];
        while let Some((x, reason)) = pending.pop() {
            if !self.alive[x] {
                continue;
            }
            self.alive[x] = false;
            self.died.push((x, reason.to_string()));
            let linked: Vec<usize> = self
                .links
                .iter()
                .filter(|(a, b)| *a == x || *b == x)
                .map(|&(a, b)| if a == x { b } else { a })
                .collect();
            self.links.retain(|(a, b)| *a != x && *b != x);
            for y in linked {
                if !self.alive[y] {
                    continue;
                }
                if self.trap[y] {
                    self.log[y].push(Event::Exit {
                        from: x,
                        reason: reason.to_string(),
                    });
                } else if !reason.is_normal() {
                    pending.push((y, reason.clone()));
                }
            }
            let watchers: Vec<usize> = self
                .monitors
                .iter()
                .filter(|(_, t)| *t == x)
                .map(|(w, _)| *w)
                .collect();
            self.monitors.retain(|(w, t)| *t != x && *w != x);
            for w in watchers {
                if self.alive[w] {
                    self.log[w].push(Event::Down {
                        of: x,
                        reason: reason.to_string(),
                    });
                }
            }
        }
    }

    fn apply(&mut self, op: &Op) {
        self.died.clear();
        let n = self.alive.len();
        match *op {
            Op::Spawn if n < MAX_PUPPETS => self.spawn(),
            Op::Link(a, b) if a < n && b < n && self.alive[a] => {
                if a == b {
                } else if self.alive[b] {
                    self.links.insert(Self::link_key(a, b));
                } else if self.trap[a] {
                    self.log[a].push(Event::Exit {
                        from: b,
                        reason: "noproc".into(),
                    });
                } else {
                    self.die(a, ExitReason::NoProc);
                }
            }
            Op::Unlink(a, b) if a < n && b < n && self.alive[a] => {
                self.links.remove(&Self::link_key(a, b));
            }
            Op::Monitor(a, b) if a < n && b < n && self.alive[a] => {
                if self.alive[b] {
                    self.monitors.push((a, b));
                } else {
                    self.log[a].push(Event::Down {
                        of: b,
                        reason: "noproc".into(),
                    });
                }
            }
            Op::Trap(a, trap) if a < n && self.alive[a] => self.trap[a] = trap,
            Op::Exit(a, b, ref reason) if a < n && b < n && self.alive[a] && self.alive[b] => {
                let reason = reason.exit_reason();
                if reason == ExitReason::Kill {
                    self.die(b, ExitReason::Killed);
                } else if self.trap[b] {
                    self.log[b].push(Event::Exit {
                        from: a,
                        reason: reason.to_string(),
                    });
                } else if reason.is_normal() {
                    if a == b {
                        self.die(b, ExitReason::Normal);
                    }
                } else {
                    self.die(b, reason);
                }
            }
            Op::Stop(a, ref reason) if a < n && self.alive[a] => self.die(a, reason.exit_reason()),
            Op::Send(a, b, note) if a < n && b < n && self.alive[a] && self.alive[b] => {
                self.log[b].push(Event::Note(note));
            }
            _ => {}
        }
    }
}

// ------------------------------------------------------------------ the real thing

enum Cmd {
    Link(Pid),
    Unlink(Pid),
    Monitor(Pid),
    Trap(bool),
    Exit(Pid, ExitReason),
    Stop(ExitReason),
    Send(Addr<Cmd>, u32),
    Note(u32),
    Sync(mpsc::Sender<()>),
}

type Logs = Arc<Mutex<Vec<Vec<Event>>>>;
type Pids = Arc<Mutex<Vec<Pid>>>;

async fn puppet(me: usize, logs: Logs, pids: Pids, mut ctx: Ctx<Cmd>) {
    let index_of = |pid: Pid| {
        pids.lock()
            .unwrap()
            .iter()
            .position(|p| *p == pid)
            .expect("a puppet")
    };
    loop {
        match ctx.recv().await {
            Message::User(Cmd::Link(pid)) => ctx.link(pid),
            Message::User(Cmd::Unlink(pid)) => ctx.unlink(pid),
            Message::User(Cmd::Monitor(pid)) => {
                ctx.monitor(pid);
            }
            Message::User(Cmd::Trap(trap)) => {
                ctx.trap_exit(trap);
            }
            Message::User(Cmd::Exit(pid, reason)) => ctx.exit(pid, reason),
            Message::User(Cmd::Stop(reason)) => ctx.stop(reason),
            Message::User(Cmd::Send(to, note)) => ctx.send(&to, Cmd::Note(note)).unwrap(),
            Message::User(Cmd::Note(note)) => logs.lock().unwrap()[me].push(Event::Note(note)),
            Message::User(Cmd::Sync(ack)) => {
                let _ = ack.send(());
            }
            Message::Exit(signal) => {
                let event = Event::Exit {
                    from: index_of(signal.from),
                    reason: signal.reason.to_string(),
                };
                logs.lock().unwrap()[me].push(event);
            }
            Message::Down(down) => {
                let event = Event::Down {
                    of: index_of(down.pid),
                    reason: down.reason.to_string(),
                };
                logs.lock().unwrap()[me].push(event);
            }
        }
    }
}

struct Real {
    handle: Handle,
    addrs: Vec<Addr<Cmd>>,
    logs: Logs,
    pids: Pids,
}

impl Real {
    fn spawn(&mut self) {
        let me = self.addrs.len();
        self.logs.lock().unwrap().push(vec![]);
        let (logs, pids) = (Arc::clone(&self.logs), Arc::clone(&self.pids));
        let addr = self
            .handle
            .spawn(move |ctx: Ctx<Cmd>| puppet(me, logs, pids, ctx))
            .unwrap();
        self.pids.lock().unwrap().push(addr.pid());
        self.addrs.push(addr);
    }

    fn pid(&self, i: usize) -> Pid {
        self.addrs[i].pid()
    }

    /// Sends the op's command to its puppet; `live` says who the model thinks is alive.
    fn apply(&mut self, op: &Op, live: &[bool]) {
        let n = self.addrs.len();
        let ok = |a: usize| a < n && live[a];
        let command = match *op {
            Op::Spawn => {
                if n < MAX_PUPPETS {
                    self.spawn();
                }
                return;
            }
            Op::Link(a, b) if ok(a) && b < n => (a, Cmd::Link(self.pid(b))),
            Op::Unlink(a, b) if ok(a) && b < n => (a, Cmd::Unlink(self.pid(b))),
            Op::Monitor(a, b) if ok(a) && b < n => (a, Cmd::Monitor(self.pid(b))),
            Op::Trap(a, trap) if ok(a) => (a, Cmd::Trap(trap)),
            Op::Exit(a, b, ref r) if ok(a) && ok(b) => (a, Cmd::Exit(self.pid(b), r.exit_reason())),
            Op::Stop(a, ref r) if ok(a) => (a, Cmd::Stop(r.exit_reason())),
            Op::Send(a, b, note) if ok(a) && ok(b) => (a, Cmd::Send(self.addrs[b], note)),
            _ => return,
        };
        self.handle.send(&self.addrs[command.0], command.1).unwrap();
    }

    /// Whether puppet `i` answers a sync (it has handled everything sent to it before).
    fn sync(&self, i: usize) -> bool {
        let (ack, acked) = mpsc::channel();
        self.handle.send(&self.addrs[i], Cmd::Sync(ack)).unwrap();
        acked.recv_timeout(SAFETY).is_ok()
    }
}

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let rt = Runtime::builder().threads(2).build();
    let mut model = Model::default();
    let mut real = Real {
        handle: rt.handle().clone(),
        addrs: vec![],
        logs: Arc::default(),
        pids: Arc::default(),
    };
    for _ in 0..3 {
        model.spawn();
        real.spawn();
    }
    for (step, op) in ops.iter().enumerate() {
        let live_before = model.alive.clone();
        // Watch every puppet alive now; the ones the model says die must die, with its reason.
        let watches: Vec<_> = (0..real.addrs.len())
            .map(|i| real.handle.watch(real.pid(i)))
            .collect();
        // The acting puppet first finishes what it was told before.
        real.apply(op, &live_before);
        model.apply(op);
        for (x, reason) in &model.died {
            let got = watches[*x].wait_timeout(Duration::from_secs(5));
            prop_assert_eq!(
                got.map(|r| r.to_string()),
                Some(reason.clone()),
                "step {} {:?}: puppet {} should die",
                step,
                op,
                x
            );
        }
        // Twice: a step can make a puppet send itself a message (a noproc exit, a Down),
        // queued behind the first sync.
        for _ in 0..2 {
            for (i, alive) in model.alive.iter().enumerate() {
                if *alive {
                    prop_assert!(
                        real.sync(i),
                        "step {} {:?}: puppet {} should be alive",
                        step,
                        op,
                        i
                    );
                }
            }
        }
        // What the survivors received. A process that died in this step may or may not have
        // taken a message sent to it in the same cascade before its exit signal arrived;
        // after its death it takes nothing, so its log is settled and no longer compared.
        let real_logs = real.logs.lock().unwrap().clone();
        for (i, alive) in model.alive.iter().enumerate() {
            if *alive {
                let mut got = real_logs[i].clone();
                let mut want = model.log[i].clone();
                got.sort();
                want.sort();
                prop_assert_eq!(
                    got,
                    want,
                    "step {} {:?}: what puppet {} received",
                    step,
                    op,
                    i
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn signals_follow_the_otp_model(ops in prop::collection::vec(op(), 1..14)) {
        check(&ops)?;
    }
}
