//! The baobab side of the differential scenarios: each function below does the same steps as
//! `tests/otp/<name>.escript` and prints the same normalised trace. The helpers mirror
//! `tests/otp/common.hrl` one for one: `Main` is the escript's main process, `child` its
//! `child/3`, and `Msg` the terms they exchange.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use baobab::supervisor::{ChildSpec, Restart, Shutdown, Strategy, Supervisor, SupervisorSpec};
use baobab::{Addr, Ctx, ExitReason, Message, MonitorRef, Pid, Runtime};

/// Every scenario, by the name of its escript.
pub const SCENARIOS: &[&str] = &[
    "link_error",
    "link_normal_ignored",
    "trap_exit_reasons",
    "kill_trapper",
    "self_exit_kill",
    "exit_self_kill_signal",
    "link_dead_with_trap",
    "link_dead_without_trap",
    "monitor_one_down",
    "monitor_dead",
    "demonitor_flush",
    "exit_normal_from_other",
    "exit_error_from_other",
    "first_exit_signal_wins",
    "alive_after_exit_signal",
    "link_monitor_after_fatal_signal",
    "exit_self_normal",
    "link_both_ways",
    "chain",
    "unlink_before_crash",
    "ordering",
    "shutdown_reasons",
    "name_released",
    "supervisor_matrix",
    "supervisor_intensity_shutdown",
];

/// How long an expected event may take (`?WAIT`), and how long to wait for one that must not
/// come (`?QUIET`).
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(100);

/// Runs scenario `name` on a fresh runtime and returns its trace.
pub fn run(name: &str) -> Vec<String> {
    let trace = Trace::default();
    let rt = Runtime::builder().threads(2).build();
    let lines = trace.clone();
    let scenario = name.to_owned();
    let outcome = rt.block_on(move |ctx: Ctx<Msg>| async move {
        let mut main = Main::new(ctx, lines);
        let step = match scenario.as_str() {
            "link_error" => link_error(&mut main).await,
            "link_normal_ignored" => link_normal_ignored(&mut main).await,
            "trap_exit_reasons" => trap_exit_reasons(&mut main).await,
            "kill_trapper" => kill_trapper(&mut main).await,
            "self_exit_kill" => self_exit_kill(&mut main).await,
            "exit_self_kill_signal" => exit_self_kill_signal(&mut main).await,
            "link_dead_with_trap" => link_dead_with_trap(&mut main).await,
            "link_dead_without_trap" => link_dead_without_trap(&mut main).await,
            "monitor_one_down" => monitor_one_down(&mut main).await,
            "monitor_dead" => monitor_dead(&mut main).await,
            "demonitor_flush" => demonitor_flush(&mut main).await,
            "exit_normal_from_other" => exit_normal_from_other(&mut main).await,
            "exit_error_from_other" => exit_error_from_other(&mut main).await,
            "first_exit_signal_wins" => first_exit_signal_wins(&mut main).await,
            "alive_after_exit_signal" => alive_after_exit_signal(&mut main).await,
            "link_monitor_after_fatal_signal" => link_monitor_after_fatal_signal(&mut main).await,
            "exit_self_normal" => exit_self_normal(&mut main).await,
            "link_both_ways" => link_both_ways(&mut main).await,
            "chain" => chain(&mut main).await,
            "unlink_before_crash" => unlink_before_crash(&mut main).await,
            "ordering" => ordering(&mut main).await,
            "shutdown_reasons" => shutdown_reasons(&mut main).await,
            "name_released" => name_released(&mut main).await,
            "supervisor_matrix" => supervisor_matrix(&mut main).await,
            "supervisor_intensity_shutdown" => supervisor_intensity_shutdown(&mut main).await,
            other => panic!("no scenario named {other}"),
        };
        if let Err(Stuck(what)) = step {
            main.say(format!("timeout waiting for {what}"));
        }
    });
    if let Err(reason) = outcome {
        trace.say(format!("main exited {reason}"));
    }
    drop(rt);
    trace.lines()
}

// ---- the terms processes exchange

/// What a child relays to main about a signal it received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    Exit { from: Pid, reason: ExitReason },
    Down { of: Pid, reason: ExitReason },
}

/// `{started, Role, Pid}`, `{saw, Pid, _}`, `{ack, Pid}` ... in the escripts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    // To main.
    Started(&'static str, Addr<Msg>),
    Saw(Pid, Seen),
    Ack(Pid),
    Pong(Pid),
    Registered(Pid, bool),
    N(u32),
    // To a child.
    Ping,
    Stop,
    Go,
    ExitWith(ExitReason),
    ExitTo(Pid, ExitReason),
    Link(Pid),
    LinkAndNotify(Addr<Msg>),
    Linked,
    Unlink(Pid),
    Monitor(Pid),
    Register(&'static str),
    // From a supervised child to main.
    Stopped(&'static str),
}

fn boom() -> ExitReason {
    ExitReason::error("boom")
}

// ---- the trace

/// The trace lines, shared with the runner so a trace survives main's death.
#[derive(Clone, Default)]
struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    fn say(&self, line: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// An expected event did not come within `WAIT`: what was awaited.
struct Stuck(String);

type Step = Result<(), Stuck>;

// ---- the main process's side

/// The scenario's main process: it drives the children and prints the trace.
struct Main {
    ctx: Ctx<Msg>,
    roles: Vec<(Pid, &'static str)>,
    trace: Trace,
}

impl Main {
    fn new(ctx: Ctx<Msg>, trace: Trace) -> Self {
        let roles = vec![(ctx.pid(), "main")];
        Main { ctx, roles, trace }
    }

    fn addr(&self) -> Addr<Msg> {
        self.ctx.addr()
    }

    fn say(&self, line: String) {
        self.trace.say(line);
    }

    fn role(&mut self, pid: impl Into<Pid>, name: &'static str) {
        let pid = pid.into();
        self.roles.retain(|(p, _)| *p != pid);
        self.roles.push((pid, name));
    }

    fn name(&self, pid: Pid) -> &'static str {
        self.roles
            .iter()
            .find(|(p, _)| *p == pid)
            .map_or("?", |(_, name)| name)
    }

    fn send(&self, to: &Addr<Msg>, message: Msg) {
        self.ctx.send(to, message).expect("an unbounded mailbox");
    }

    /// Selective receive within `WAIT`.
    async fn wait(
        &mut self,
        what: impl FnOnce(&Self) -> String,
        predicate: impl FnMut(&Message<&Msg>) -> bool,
    ) -> Result<Message<Msg>, Stuck> {
        match self.ctx.recv_matching_timeout(predicate, WAIT).await {
            Some(message) => Ok(message),
            None => Err(Stuck(what(self))),
        }
    }

    /// Selective receive of something that should not come (or must be there already, with
    /// `Duration::ZERO`).
    async fn within(
        &mut self,
        timeout: Duration,
        predicate: impl FnMut(&Message<&Msg>) -> bool,
    ) -> Option<Message<Msg>> {
        self.ctx.recv_matching_timeout(predicate, timeout).await
    }

    /// `started/1`: waits for child `role` to announce itself.
    async fn started(&mut self, role: &'static str) -> Result<Addr<Msg>, Stuck> {
        let message = self
            .wait(
                |_| format!("{role} to start"),
                |m| matches!(m, Message::User(Msg::Started(r, _)) if *r == role),
            )
            .await?;
        let Message::User(Msg::Started(_, addr)) = message else {
            unreachable!()
        };
        self.role(addr, role);
        Ok(addr)
    }

    /// `exited/1`: waits for the Down of `pid` (which main monitors) and prints its reason.
    async fn exited(&mut self, pid: impl Into<Pid>) -> Step {
        let pid = pid.into();
        let message = self
            .wait(
                |m| format!("DOWN of {}", m.name(pid)),
                |m| matches!(m, Message::Down(d) if d.pid == pid),
            )
            .await?;
        let Message::Down(down) = message else {
            unreachable!()
        };
        self.say(format!("{} exited {}", self.name(pid), down.reason));
        Ok(())
    }

    /// `got_exit/1`: waits for a trapped exit from `pid` to main.
    async fn got_exit(&mut self, pid: impl Into<Pid>) -> Step {
        let pid = pid.into();
        let message = self
            .wait(
                |m| format!("EXIT from {}", m.name(pid)),
                |m| matches!(m, Message::Exit(e) if e.from == pid),
            )
            .await?;
        let Message::Exit(signal) = message else {
            unreachable!()
        };
        self.say(format!(
            "main got EXIT from {} reason {}",
            self.name(pid),
            signal.reason
        ));
        Ok(())
    }

    /// `saw/1`: waits for the next thing child `who` relayed.
    async fn saw(&mut self, who: impl Into<Pid>) -> Step {
        let who = who.into();
        let message = self
            .wait(
                |m| format!("a report from {}", m.name(who)),
                |m| matches!(m, Message::User(Msg::Saw(w, _)) if *w == who),
            )
            .await?;
        let line = match message {
            Message::User(Msg::Saw(_, Seen::Exit { from, reason })) => format!(
                "{} got EXIT from {} reason {reason}",
                self.name(who),
                self.name(from)
            ),
            Message::User(Msg::Saw(_, Seen::Down { of, reason })) => {
                format!("{} got DOWN {} {reason}", self.name(who), self.name(of))
            }
            _ => unreachable!(),
        };
        self.say(line);
        Ok(())
    }

    /// `command/2`: sends child `to` a command and waits until it has carried it out.
    async fn command(&mut self, to: &Addr<Msg>, command: Msg) -> Step {
        self.send(to, command);
        self.acked(to).await
    }

    /// `acked/1`.
    async fn acked(&mut self, from: &Addr<Msg>) -> Step {
        let pid = from.pid();
        self.wait(
            |m| format!("{} to acknowledge", m.name(pid)),
            |m| matches!(m, Message::User(Msg::Ack(p)) if *p == pid),
        )
        .await?;
        Ok(())
    }

    /// `ping/1`: the child's answer shows it is alive and has handled all main sent before.
    async fn ping(&mut self, to: &Addr<Msg>) -> Step {
        self.send(to, Msg::Ping);
        let pid = to.pid();
        self.wait(
            |m| format!("pong from {}", m.name(pid)),
            |m| matches!(m, Message::User(Msg::Pong(p)) if *p == pid),
        )
        .await?;
        self.say(format!("{} answered ping", self.name(pid)));
        Ok(())
    }

    /// `receive {ack, P} -> say(...) after 0 -> ok end`: whether `pid` acknowledged a command
    /// before its exit (which main has already seen).
    async fn acked_before_exit(&mut self, pid: Pid, line: &str) {
        let acked = self
            .within(
                Duration::ZERO,
                |m| matches!(m, Message::User(Msg::Ack(p)) if *p == pid),
            )
            .await;
        if acked.is_some() {
            self.say(line.to_owned());
        }
    }

    /// `alive/1`.
    fn alive(&self, addrs: &[Addr<Msg>]) {
        let states: Vec<String> = addrs
            .iter()
            .map(|a| format!("{}={}", self.name(a.pid()), self.ctx.is_alive(a.pid())))
            .collect();
        self.say(format!("alive: {}", states.join(" ")));
    }

    /// Spawns `child(Main, role, trap)` monitored by main.
    fn spawn_child(&mut self, role: &'static str, trap: bool) -> Addr<Msg> {
        let main = self.addr();
        let (addr, _) = self
            .ctx
            .spawn_monitor(move |ctx: Ctx<Msg>| child(ctx, main, role, trap))
            .unwrap();
        self.role(addr, role);
        addr
    }
}

// ---- a child

/// `child/3`: traps exits if asked, announces itself, then relays every exit signal and Down
/// it receives to main and carries out main's commands, until told to stop (it then exits
/// with reason `done`).
async fn child(mut ctx: Ctx<Msg>, main: Addr<Msg>, role: &'static str, trap: bool) -> ExitReason {
    ctx.trap_exit(trap);
    let me = ctx.pid();
    ctx.send(&main, Msg::Started(role, ctx.addr())).unwrap();
    loop {
        let reply = match ctx.recv().await {
            Message::Exit(signal) => Msg::Saw(
                me,
                Seen::Exit {
                    from: signal.from,
                    reason: signal.reason,
                },
            ),
            Message::Down(down) => Msg::Saw(
                me,
                Seen::Down {
                    of: down.pid,
                    reason: down.reason,
                },
            ),
            Message::User(Msg::Ping) => Msg::Pong(me),
            Message::User(Msg::Stop) => return ExitReason::error("done"),
            Message::User(Msg::ExitWith(reason)) => return reason,
            Message::User(Msg::ExitTo(pid, reason)) => {
                ctx.exit(pid, reason);
                Msg::Ack(me)
            }
            Message::User(Msg::Link(pid)) => {
                ctx.link(pid);
                Msg::Ack(me)
            }
            Message::User(Msg::LinkAndNotify(other)) => {
                ctx.link(other.pid());
                ctx.send(&other, Msg::Linked).unwrap();
                Msg::Ack(me)
            }
            Message::User(Msg::Linked) => Msg::Ack(me),
            Message::User(Msg::Unlink(pid)) => {
                ctx.unlink(pid);
                Msg::Ack(me)
            }
            Message::User(Msg::Monitor(pid)) => {
                ctx.monitor(pid);
                Msg::Ack(me)
            }
            Message::User(Msg::Register(name)) => Msg::Registered(me, ctx.register(name).is_ok()),
            Message::User(other) => panic!("child {role} cannot handle {other:?}"),
        };
        ctx.send(&main, reply).unwrap();
    }
}

// ---- the scenarios, in the order of SCENARIOS

async fn link_error(m: &mut Main) -> Step {
    let main = m.addr();
    let (a, _) = m
        .ctx
        .spawn_monitor(move |ctx: Ctx<Msg>| async move {
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "b", true))
                .unwrap();
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "c", false))
                .unwrap();
            child(ctx, main, "a", false).await
        })
        .unwrap();
    m.role(a, "a");
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.started("a").await?;
    m.ctx.monitor(b.pid());
    m.ctx.monitor(c.pid());
    m.send(&a, Msg::ExitWith(boom()));
    m.exited(a).await?;
    m.saw(b).await?;
    m.exited(c).await?;
    m.alive(&[a, b, c]);
    Ok(())
}

async fn link_normal_ignored(m: &mut Main) -> Step {
    let main = m.addr();
    let (a, _) = m
        .ctx
        .spawn_monitor(move |ctx: Ctx<Msg>| async move {
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "b", false))
                .unwrap();
            child(ctx, main, "a", false).await
        })
        .unwrap();
    m.role(a, "a");
    let b = m.started("b").await?;
    m.started("a").await?;
    m.ctx.monitor(b.pid());
    m.command(&b, Msg::Monitor(a.pid())).await?;
    m.send(&a, Msg::ExitWith(ExitReason::Normal));
    m.exited(a).await?;
    m.saw(b).await?;
    m.alive(&[a, b]);
    m.ping(&b).await?;
    m.send(&b, Msg::Stop);
    m.exited(b).await
}

async fn trap_exit_reasons(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    for role in ["a", "b", "c"] {
        m.ctx
            .spawn_link(move |c: Ctx<Msg>| child(c, main, role, false))
            .unwrap();
    }
    let a = m.started("a").await?;
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.send(&a, Msg::ExitWith(ExitReason::Normal));
    m.send(&b, Msg::ExitWith(boom()));
    m.send(&c, Msg::ExitWith(ExitReason::Shutdown));
    m.got_exit(a).await?;
    m.got_exit(b).await?;
    m.got_exit(c).await?;
    m.alive(&[main, a, b, c]);
    Ok(())
}

async fn kill_trapper(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    m.ctx
        .spawn_link(move |ctx: Ctx<Msg>| async move {
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "c", false))
                .unwrap();
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "d", true))
                .unwrap();
            child(ctx, main, "b", true).await
        })
        .unwrap();
    let c = m.started("c").await?;
    let d = m.started("d").await?;
    let b = m.started("b").await?;
    for p in [b, c, d] {
        m.ctx.monitor(p.pid());
    }
    m.ctx.exit(b.pid(), ExitReason::Kill);
    m.got_exit(b).await?;
    m.exited(b).await?;
    m.exited(c).await?;
    m.saw(d).await?;
    m.alive(&[b, c, d]);
    Ok(())
}

/// A process with two linked children, `b` (not trapping) and `c` (trapping), all three
/// running `child`; main's link to it is the caller's choice.
fn parent_of_b_and_c(
    main: Addr<Msg>,
    trap: bool,
) -> impl FnOnce(Ctx<Msg>) -> std::pin::Pin<Box<dyn Future<Output = ExitReason> + Send>> {
    move |ctx: Ctx<Msg>| {
        Box::pin(async move {
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "b", false))
                .unwrap();
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "c", true))
                .unwrap();
            child(ctx, main, "a", trap).await
        })
    }
}

async fn self_exit_kill(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let a = m
        .ctx
        .spawn_link(parent_of_b_and_c(m.addr(), false))
        .unwrap();
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.started("a").await?;
    for p in [a, b, c] {
        m.ctx.monitor(p.pid());
    }
    m.send(&a, Msg::ExitWith(ExitReason::Kill));
    m.got_exit(a).await?;
    m.exited(a).await?;
    m.exited(b).await?;
    m.saw(c).await?;
    m.alive(&[a, b, c]);
    Ok(())
}

async fn exit_self_kill_signal(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let a = m.ctx.spawn_link(parent_of_b_and_c(m.addr(), true)).unwrap();
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.started("a").await?;
    for p in [a, b, c] {
        m.ctx.monitor(p.pid());
    }
    m.send(&a, Msg::ExitTo(a.pid(), ExitReason::Kill));
    m.got_exit(a).await?;
    m.exited(a).await?;
    m.acked_before_exit(a.pid(), "a carried on after exit(self(), kill)")
        .await;
    m.exited(b).await?;
    m.saw(c).await?;
    m.alive(&[a, b, c]);
    Ok(())
}

/// A process that ends at once with `normal`, named `d`, waited for.
async fn dead_process(m: &mut Main, reason: ExitReason) -> Result<Addr<Msg>, Stuck> {
    let (d, _) = m
        .ctx
        .spawn_monitor(move |_: Ctx<Msg>| async move { reason })
        .unwrap();
    m.role(d, "d");
    m.exited(d).await?;
    Ok(d)
}

async fn link_dead_with_trap(m: &mut Main) -> Step {
    let d = dead_process(m, ExitReason::Normal).await?;
    m.ctx.trap_exit(true);
    m.ctx.link(d.pid());
    m.got_exit(d).await?;
    match m.within(QUIET, |m| matches!(m, Message::Exit(_))).await {
        Some(Message::Exit(e)) => m.say(format!("another EXIT {}", e.reason)),
        _ => m.say("no other EXIT".to_owned()),
    }
    let main = m.addr();
    m.alive(&[main, d]);
    Ok(())
}

async fn link_dead_without_trap(m: &mut Main) -> Step {
    let d = dead_process(m, ExitReason::Normal).await?;
    let main = m.addr();
    let (a, _) = m.ctx.spawn_monitor(parent_of_b_and_c(main, false)).unwrap();
    m.role(a, "a");
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.started("a").await?;
    m.ctx.monitor(b.pid());
    m.send(&a, Msg::Link(d.pid()));
    m.exited(a).await?;
    m.acked_before_exit(a.pid(), "a carried on after linking to a dead pid")
        .await;
    m.exited(b).await?;
    m.saw(c).await?;
    m.alive(&[a, b, c]);
    Ok(())
}

/// Waits for the Down of monitor `reference`.
async fn down_of(m: &mut Main, reference: MonitorRef, what: &str) -> Result<ExitReason, Stuck> {
    let message = m
        .wait(
            |_| what.to_owned(),
            |m| matches!(m, Message::Down(d) if d.reference == reference),
        )
        .await?;
    let Message::Down(down) = message else {
        unreachable!()
    };
    Ok(down.reason)
}

/// `receive {'DOWN', ...} -> say("another DOWN ~s") after ?QUIET -> say("no other DOWN") end`.
async fn no_other_down(m: &mut Main) {
    match m.within(QUIET, |m| matches!(m, Message::Down(_))).await {
        Some(Message::Down(d)) => m.say(format!("another DOWN {}", d.reason)),
        _ => m.say("no other DOWN".to_owned()),
    }
}

async fn monitor_one_down(m: &mut Main) -> Step {
    let main = m.addr();
    let (a, m1) = m
        .ctx
        .spawn_monitor(move |c: Ctx<Msg>| child(c, main, "a", false))
        .unwrap();
    m.started("a").await?;
    let m2 = m.ctx.monitor(a.pid());
    m.send(&a, Msg::ExitWith(boom()));
    let first = down_of(m, m1, "the first DOWN").await?;
    m.say(format!("main got DOWN a {first} (first monitor)"));
    let second = down_of(m, m2, "the second DOWN").await?;
    m.say(format!("main got DOWN a {second} (second monitor)"));
    no_other_down(m).await;
    Ok(())
}

async fn monitor_dead(m: &mut Main) -> Step {
    let d = dead_process(m, ExitReason::error("gone")).await?;
    let reference = m.ctx.monitor(d.pid());
    let reason = down_of(m, reference, "DOWN noproc").await?;
    m.say(format!("main got DOWN d {reason}"));
    no_other_down(m).await;
    let removed = m.ctx.demonitor(reference, false);
    m.say(format!("demonitor after its DOWN: {removed}"));
    Ok(())
}

async fn demonitor_flush(m: &mut Main) -> Step {
    let d = dead_process(m, ExitReason::Normal).await?;
    let md = m.ctx.monitor(d.pid());
    m.ctx.demonitor(md, true);
    let flushed = m
        .within(
            QUIET,
            |m| matches!(m, Message::Down(down) if down.reference == md),
        )
        .await;
    m.say(match flushed {
        Some(_) => "DOWN after demonitor flush".to_owned(),
        None => "no DOWN after demonitor flush".to_owned(),
    });
    let main = m.addr();
    let (a, _) = m
        .ctx
        .spawn_monitor(move |c: Ctx<Msg>| child(c, main, "a", false))
        .unwrap();
    m.started("a").await?;
    let ma = m.ctx.monitor(a.pid());
    let removed = m.ctx.demonitor(ma, false);
    m.say(format!("demonitor of a live monitor: {removed}"));
    m.send(&a, Msg::ExitWith(boom()));
    m.exited(a).await?;
    let late = m
        .within(
            QUIET,
            |m| matches!(m, Message::Down(down) if down.reference == ma),
        )
        .await;
    m.say(match late {
        Some(_) => "DOWN from the removed monitor".to_owned(),
        None => "no DOWN from the removed monitor".to_owned(),
    });
    let b = m
        .ctx
        .spawn(move |c: Ctx<Msg>| child(c, main, "b", false))
        .unwrap();
    m.started("b").await?;
    let mb1 = m.ctx.monitor(b.pid());
    let mb2 = m.ctx.monitor(b.pid());
    m.send(&b, Msg::ExitWith(boom()));
    let reason = down_of(m, mb2, "the DOWN of the second monitor").await?;
    m.say(format!("main got DOWN b {reason} (second monitor)"));
    m.ctx.demonitor(mb1, true);
    let flushed = m
        .within(
            QUIET,
            |m| matches!(m, Message::Down(down) if down.reference == mb1),
        )
        .await;
    m.say(match flushed {
        Some(_) => "DOWN after flushing a fired monitor".to_owned(),
        None => "no DOWN after flushing a fired monitor".to_owned(),
    });
    Ok(())
}

async fn exit_normal_from_other(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", true);
    m.started("a").await?;
    m.started("b").await?;
    m.ctx.exit(a.pid(), ExitReason::Normal);
    m.ctx.exit(b.pid(), ExitReason::Normal);
    m.ping(&a).await?;
    m.saw(b).await?;
    m.alive(&[a, b]);
    m.send(&a, Msg::Stop);
    m.send(&b, Msg::Stop);
    m.exited(a).await?;
    m.exited(b).await
}

async fn exit_error_from_other(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", true);
    m.started("a").await?;
    m.started("b").await?;
    m.ctx.exit(a.pid(), boom());
    m.send(&a, Msg::Ping);
    m.ctx.exit(b.pid(), boom());
    m.exited(a).await?;
    let pid = a.pid();
    let pong = m
        .within(
            Duration::ZERO,
            |m| matches!(m, Message::User(Msg::Pong(p)) if *p == pid),
        )
        .await;
    if pong.is_some() {
        m.say("a answered a ping sent after the exit signal".to_owned());
    }
    m.saw(b).await?;
    m.alive(&[a, b]);
    m.send(&b, Msg::Stop);
    m.exited(b).await
}

async fn first_exit_signal_wins(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", false);
    let c = m.spawn_child("c", false);
    for role in ["a", "b", "c"] {
        m.started(role).await?;
    }
    m.ctx.exit(a.pid(), boom());
    m.ctx.exit(a.pid(), ExitReason::Kill);
    m.ctx.exit(b.pid(), ExitReason::Kill);
    m.ctx.exit(b.pid(), boom());
    m.ctx.exit(c.pid(), ExitReason::Normal);
    m.ctx.exit(c.pid(), ExitReason::Shutdown);
    m.ctx.exit(c.pid(), boom());
    m.exited(a).await?;
    m.exited(b).await?;
    m.exited(c).await
}

async fn alive_after_exit_signal(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", true);
    let c = m.spawn_child("c", false);
    let d = m.spawn_child("d", false);
    let e = m.spawn_child("e", true);
    for role in ["a", "b", "c", "d", "e"] {
        m.started(role).await?;
    }
    m.ctx.exit(a.pid(), ExitReason::Kill);
    m.ctx.exit(b.pid(), ExitReason::Kill);
    m.ctx.exit(c.pid(), boom());
    m.ctx.exit(d.pid(), ExitReason::Normal);
    m.ctx.exit(e.pid(), boom());
    m.alive(&[a, b, c, d, e]);
    m.exited(a).await?;
    m.exited(b).await?;
    m.exited(c).await?;
    m.saw(e).await
}

async fn link_monitor_after_fatal_signal(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    for (role, trap) in [("a", false), ("b", false), ("c", false), ("d", true)] {
        m.ctx
            .spawn(move |c: Ctx<Msg>| child(c, main, role, trap))
            .unwrap();
    }
    let a = m.started("a").await?;
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    let d = m.started("d").await?;
    m.ctx.exit(a.pid(), ExitReason::Kill);
    m.ctx.link(a.pid());
    m.got_exit(a).await?;
    for (p, reason) in [(b, ExitReason::Kill), (c, boom())] {
        m.ctx.exit(p.pid(), reason);
        let reference = m.ctx.monitor(p.pid());
        let reason = down_of(m, reference, "a DOWN").await?;
        m.say(format!("main got DOWN {} {reason}", m.name(p.pid())));
    }
    m.ctx.exit(d.pid(), ExitReason::Kill);
    m.ctx.link(d.pid());
    m.got_exit(d).await
}

async fn exit_self_normal(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", true);
    let c = m.spawn_child("c", false);
    let d = m.spawn_child("d", true);
    for role in ["a", "b", "c", "d"] {
        m.started(role).await?;
    }
    m.send(&a, Msg::ExitTo(a.pid(), ExitReason::Normal));
    m.exited(a).await?;
    m.acked_before_exit(a.pid(), "a carried on after exit(self(), normal)")
        .await;
    m.command(&b, Msg::ExitTo(b.pid(), ExitReason::Normal))
        .await?;
    m.saw(b).await?;
    m.send(&c, Msg::ExitTo(c.pid(), boom()));
    m.exited(c).await?;
    m.acked_before_exit(c.pid(), "c carried on after exit(self(), boom)")
        .await;
    m.command(&d, Msg::ExitTo(d.pid(), boom())).await?;
    m.saw(d).await?;
    m.alive(&[a, b, c, d]);
    m.send(&b, Msg::Stop);
    m.send(&d, Msg::Stop);
    m.exited(b).await?;
    m.exited(d).await
}

async fn link_both_ways(m: &mut Main) -> Step {
    let all = ["a", "b", "c", "d"].map(|role| m.spawn_child(role, false));
    let [a, b, c, d] = all;
    for role in ["a", "b", "c", "d"] {
        m.started(role).await?;
    }
    m.command(&a, Msg::LinkAndNotify(b)).await?;
    m.acked(&b).await?;
    m.send(&a, Msg::ExitWith(boom()));
    m.exited(a).await?;
    m.exited(b).await?;
    m.command(&c, Msg::LinkAndNotify(d)).await?;
    m.acked(&d).await?;
    m.send(&d, Msg::ExitWith(ExitReason::shutdown_with("gone")));
    m.exited(d).await?;
    m.exited(c).await?;
    m.alive(&all);
    Ok(())
}

async fn chain(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    m.ctx
        .spawn_link(move |ctx: Ctx<Msg>| async move {
            ctx.spawn_link(move |ctx: Ctx<Msg>| async move {
                ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "c", false))
                    .unwrap();
                child(ctx, main, "b", false).await
            })
            .unwrap();
            child(ctx, main, "a", false).await
        })
        .unwrap();
    let c = m.started("c").await?;
    let b = m.started("b").await?;
    let a = m.started("a").await?;
    for p in [a, b, c] {
        m.ctx.monitor(p.pid());
    }
    m.send(&c, Msg::ExitWith(boom()));
    m.exited(c).await?;
    m.exited(b).await?;
    m.exited(a).await?;
    m.got_exit(a).await?;
    m.alive(&[a, b, c]);
    Ok(())
}

async fn unlink_before_crash(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    let a = m
        .ctx
        .spawn_link(move |c: Ctx<Msg>| child(c, main, "a", false))
        .unwrap();
    let b = m.spawn_child("b", false);
    m.started("a").await?;
    m.started("b").await?;
    m.ctx.monitor(a.pid());
    m.command(&b, Msg::Link(a.pid())).await?;
    m.command(&b, Msg::Link(a.pid())).await?;
    m.command(&b, Msg::Unlink(a.pid())).await?;
    m.ctx.unlink(a.pid());
    m.send(&a, Msg::ExitWith(boom()));
    m.exited(a).await?;
    let pid = a.pid();
    match m
        .within(QUIET, |m| matches!(m, Message::Exit(e) if e.from == pid))
        .await
    {
        Some(Message::Exit(e)) => m.say(format!("main got EXIT from a reason {}", e.reason)),
        _ => m.say("no EXIT from a".to_owned()),
    }
    m.ping(&b).await?;
    m.alive(&[a, b]);
    m.send(&b, Msg::Stop);
    m.exited(b).await
}

/// `drain/2` of `ordering.escript`: prints what arrives from `from`, in arrival order, until
/// its exit (an EXIT with `boom`, or its DOWN).
async fn drain(m: &mut Main, from: Pid) -> Step {
    loop {
        let message = m
            .wait(
                |m| format!("the exit of {}", m.name(from)),
                |m| match m {
                    Message::User(Msg::N(_)) => true,
                    Message::Exit(e) => e.from == from,
                    Message::Down(d) => d.pid == from,
                    _ => false,
                },
            )
            .await?;
        match message {
            Message::User(Msg::N(n)) => m.say(format!("main got message {n}")),
            Message::Exit(e) => {
                m.say(format!(
                    "main got EXIT from {} reason {}",
                    m.name(from),
                    e.reason
                ));
                if e.reason == boom() {
                    return Ok(());
                }
            }
            Message::Down(d) => {
                m.say(format!("main got DOWN {} {}", m.name(from), d.reason));
                return Ok(());
            }
            _ => unreachable!(),
        }
    }
}

async fn ordering(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    let a = m
        .ctx
        .spawn_link(move |mut ctx: Ctx<Msg>| async move {
            ctx.recv_matching(|m| matches!(m, Message::User(Msg::Go)))
                .await;
            ctx.send(&main, Msg::N(1)).unwrap();
            ctx.send(&main, Msg::N(2)).unwrap();
            ctx.exit(main.pid(), ExitReason::error("warn"));
            ctx.send(&main, Msg::N(3)).unwrap();
            ctx.exit(main.pid(), ExitReason::Normal);
            ctx.send(&main, Msg::N(4)).unwrap();
            boom()
        })
        .unwrap();
    m.role(a, "a");
    m.send(&a, Msg::Go);
    drain(m, a.pid()).await?;
    let (b, _) = m
        .ctx
        .spawn_monitor(move |mut ctx: Ctx<Msg>| async move {
            ctx.recv_matching(|m| matches!(m, Message::User(Msg::Go)))
                .await;
            ctx.send(&main, Msg::N(5)).unwrap();
            ctx.send(&main, Msg::N(6)).unwrap();
            boom()
        })
        .unwrap();
    m.role(b, "b");
    m.send(&b, Msg::Go);
    drain(m, b.pid()).await
}

async fn shutdown_reasons(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    let a = m.ctx.spawn_link(parent_of_b_and_c(main, false)).unwrap();
    let b = m.started("b").await?;
    let c = m.started("c").await?;
    m.started("a").await?;
    for p in [a, b, c] {
        m.ctx.monitor(p.pid());
    }
    m.send(&a, Msg::ExitWith(ExitReason::shutdown_with("restart")));
    m.got_exit(a).await?;
    m.exited(a).await?;
    m.exited(b).await?;
    m.saw(c).await?;
    let (d, _) = m
        .ctx
        .spawn_monitor(move |ctx: Ctx<Msg>| async move {
            ctx.spawn_link(move |c: Ctx<Msg>| child(c, main, "e", false))
                .unwrap();
            child(ctx, main, "d", false).await
        })
        .unwrap();
    m.role(d, "d");
    let e = m.started("e").await?;
    m.started("d").await?;
    m.ctx.monitor(e.pid());
    m.send(&d, Msg::ExitWith(ExitReason::Shutdown));
    m.exited(d).await?;
    m.exited(e).await?;
    m.alive(&[a, b, c, d, e]);
    Ok(())
}

async fn register_as(m: &mut Main, who: &Addr<Msg>, name: &'static str) -> Step {
    m.send(who, Msg::Register(name));
    let pid = who.pid();
    let message = m
        .wait(
            |_| "register".to_owned(),
            |m| matches!(m, Message::User(Msg::Registered(p, _)) if *p == pid),
        )
        .await?;
    let Message::User(Msg::Registered(_, ok)) = message else {
        unreachable!()
    };
    m.say(format!("{} register {name}: {ok}", m.name(pid)));
    Ok(())
}

fn whereis_svc(m: &Main) {
    match m.ctx.whereis::<Msg>("svc") {
        Some(addr) => m.say(format!("whereis svc: {}", m.name(addr.pid()))),
        None => m.say("whereis svc: undefined".to_owned()),
    }
}

async fn name_released(m: &mut Main) -> Step {
    let a = m.spawn_child("a", false);
    let b = m.spawn_child("b", false);
    m.started("a").await?;
    m.started("b").await?;
    register_as(m, &a, "svc").await?;
    whereis_svc(m);
    register_as(m, &a, "svc").await?;
    register_as(m, &a, "other").await?;
    register_as(m, &b, "svc").await?;
    m.send(&a, Msg::Stop);
    m.exited(a).await?;
    whereis_svc(m);
    register_as(m, &b, "svc").await?;
    whereis_svc(m);
    m.ctx.exit(b.pid(), ExitReason::Kill);
    m.exited(b).await?;
    whereis_svc(m);
    Ok(())
}

// ---- supervisors

/// `start_worker/1` of `supervisor_matrix.escript`: registered under its id so main can tell
/// it to exit; exits with the reason it is told.
fn matrix_worker(id: &'static str, restart: Restart) -> ChildSpec {
    ChildSpec::worker(id, move |start| {
        start.spawn(move |mut ctx: Ctx<Msg>| async move {
            let _ = ctx.register(id);
            loop {
                if let Message::User(Msg::ExitWith(reason)) = ctx.recv().await {
                    return reason;
                }
            }
        })
    })
    .restart(restart)
    .shutdown(Shutdown::BrutalKill)
}

/// `children/1`: the children as `(id, pid)`, sorted by id.
async fn sup_children(m: &mut Main, sup: Supervisor) -> Result<Vec<(String, Option<Pid>)>, Stuck> {
    let mut children: Vec<(String, Option<Pid>)> = sup
        .which_children(&mut m.ctx)
        .await
        .map_err(|e| Stuck(format!("which_children: {e}")))?
        .into_iter()
        .map(|c| (c.id, c.pid))
        .collect();
    children.sort();
    Ok(children)
}

/// Waits for the `Down` of `reference`.
async fn down(m: &mut Main, reference: MonitorRef, what: &str) -> Result<ExitReason, Stuck> {
    match m
        .ctx
        .recv_matching_timeout(
            |msg| matches!(msg, Message::Down(d) if d.reference == reference),
            WAIT,
        )
        .await
    {
        Some(Message::Down(d)) => Ok(d.reason),
        _ => Err(Stuck(what.to_owned())),
    }
}

/// The address of the child registered as `id` once it is `pid` (it registers when it runs).
async fn registered(m: &mut Main, id: &str, pid: Pid) -> Result<Addr<Msg>, Stuck> {
    for _ in 0..5000 {
        if let Some(addr) = m.ctx.whereis::<Msg>(id)
            && addr.pid() == pid
        {
            return Ok(addr);
        }
        m.ctx.sleep(Duration::from_millis(1)).await;
    }
    Err(Stuck(format!("{id} to register")))
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
    }
}

fn restart_name(restart: Restart) -> &'static str {
    match restart {
        Restart::Permanent => "permanent",
        Restart::Transient => "transient",
        Restart::Temporary => "temporary",
    }
}

async fn supervisor_matrix(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    for strategy in [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ] {
        for restart in [Restart::Permanent, Restart::Transient, Restart::Temporary] {
            for reason in [
                ExitReason::Normal,
                ExitReason::Shutdown,
                ExitReason::shutdown_with("x"),
                boom(),
                ExitReason::Kill,
            ] {
                matrix_combo(m, strategy, restart, reason).await?;
            }
        }
    }
    Ok(())
}

async fn matrix_combo(
    m: &mut Main,
    strategy: Strategy,
    restart: Restart,
    reason: ExitReason,
) -> Step {
    let spec = SupervisorSpec::new(strategy)
        .intensity(10, Duration::from_secs(5))
        .child(matrix_worker("a", Restart::Permanent))
        .child(matrix_worker("b", restart))
        .child(matrix_worker("c", Restart::Permanent));
    let sup = Supervisor::start_link(&mut m.ctx, spec)
        .await
        .map_err(|reason| Stuck(format!("the supervisor to start ({reason})")))?;
    let before = sup_children(m, sup).await?;
    let b = before
        .iter()
        .find(|(id, _)| id == "b")
        .and_then(|(_, pid)| *pid)
        .ok_or_else(|| Stuck("b".to_owned()))?;
    let monitor = m.ctx.monitor(b);
    if reason == ExitReason::Kill {
        m.ctx.exit(b, ExitReason::Kill);
    } else {
        let addr = registered(m, "b", b).await?;
        m.send(&addr, Msg::ExitWith(reason.clone()));
    }
    down(m, monitor, "b to exit").await?;
    let after = sup_children(m, sup).await?;
    let states: Vec<String> = before
        .iter()
        .map(|(id, old)| {
            let state = match after.iter().find(|(i, _)| i == id) {
                None => "removed",
                Some((_, None)) => "stopped",
                Some((_, pid)) if pid == old => "same",
                Some(_) => "restarted",
            };
            format!("{id}={state}")
        })
        .collect();
    m.say(format!(
        "{} {} {}: {}",
        strategy_name(strategy),
        restart_name(restart),
        reason,
        states.join(" ")
    ));
    let monitor = m.ctx.monitor(sup.pid());
    m.ctx.unlink(sup.pid());
    m.ctx.exit(sup.pid(), ExitReason::Shutdown);
    down(m, monitor, "the supervisor to stop").await?;
    Ok(())
}

/// `start_worker/2` of `supervisor_intensity_shutdown.escript`: traps exits; told to stop by
/// its supervisor, it tells main first.
fn trapping_worker(id: &'static str, main: Addr<Msg>) -> ChildSpec {
    ChildSpec::worker(id, move |start| {
        start.spawn(move |mut ctx: Ctx<Msg>| async move {
            ctx.trap_exit(true);
            loop {
                if let Message::Exit(signal) = ctx.recv().await
                    && signal.from == ctx.parent()
                {
                    ctx.send(&main, Msg::Stopped(id)).unwrap();
                    return signal.reason;
                }
            }
        })
    })
}

async fn supervisor_intensity_shutdown(m: &mut Main) -> Step {
    m.ctx.trap_exit(true);
    let main = m.addr();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(2, Duration::from_secs(5))
        .child(trapping_worker("a", main))
        .child(trapping_worker("b", main))
        .child(trapping_worker("c", main));
    let sup = Supervisor::start_link(&mut m.ctx, spec)
        .await
        .map_err(|reason| Stuck(format!("the supervisor to start ({reason})")))?;
    let sup_monitor = m.ctx.monitor(sup.pid());
    for n in 1..=3 {
        let children = sup_children(m, sup).await?;
        let b = children
            .iter()
            .find(|(id, _)| id == "b")
            .and_then(|(_, pid)| *pid)
            .ok_or_else(|| Stuck("b".to_owned()))?;
        let monitor = m.ctx.monitor(b);
        m.ctx.exit(b, ExitReason::Kill);
        down(m, monitor, "b to die").await?;
        if n < 3 {
            let alive = m.ctx.is_alive(sup.pid()) && !sup_children(m, sup).await?.is_empty();
            m.say(format!("kill {n}: supervisor alive {alive}"));
        }
    }
    for _ in 0..2 {
        match m
            .ctx
            .recv_matching_timeout(|msg| matches!(msg, Message::User(Msg::Stopped(_))), WAIT)
            .await
        {
            Some(Message::User(Msg::Stopped(id))) => m.say(format!("stopped {id}")),
            _ => return Err(Stuck("a child to stop".to_owned())),
        }
    }
    let reason = down(m, sup_monitor, "the supervisor to exit").await?;
    m.say(format!("supervisor exited {reason}"));
    Ok(())
}
