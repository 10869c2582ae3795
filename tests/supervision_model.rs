//! A state-machine test of supervisors: random sequences of child crashes (with every kind of
//! exit reason) and clock advances, run against a real supervisor on the manual clock and
//! against a small reference model of strategy + restart type + intensity. After every step
//! the supervisor's children (in order, running or not, restarted or not) and its fate must
//! match the model.

use std::time::Duration;

use baobab::supervisor::{ChildSpec, Restart, Strategy as SupStrategy, Supervisor, SupervisorSpec};
use baobab::{Clock, Ctx, ExitReason, Handle, ManualClock, Message, Pid, Runtime};
use proptest::prelude::*;

const PERIOD: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
enum Op {
    /// `exit(child, reason)` from outside, to the child at this position (if it runs).
    Crash(usize, ExitReason),
    /// The manual clock moves on by this many seconds.
    Advance(u64),
}

fn reason() -> impl Strategy<Value = ExitReason> {
    prop_oneof![
        Just(ExitReason::Normal),
        Just(ExitReason::Shutdown),
        Just(ExitReason::shutdown_with("x")),
        Just(ExitReason::error("boom")),
        Just(ExitReason::Kill),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..4usize, reason()).prop_map(|(i, r)| Op::Crash(i, r)),
        1 => (0..4u64).prop_map(Op::Advance),
    ]
}

fn restart() -> impl Strategy<Value = Restart> {
    prop_oneof![
        Just(Restart::Permanent),
        Just(Restart::Transient),
        Just(Restart::Temporary),
    ]
}

fn strategy() -> impl Strategy<Value = SupStrategy> {
    prop_oneof![
        Just(SupStrategy::OneForOne),
        Just(SupStrategy::OneForAll),
        Just(SupStrategy::RestForOne),
    ]
}

/// One child as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModelChild {
    id: String,
    restart: Restart,
    running: bool,
    /// Bumped each time the child is started again.
    generation: u32,
}

#[derive(Debug)]
struct Model {
    strategy: SupStrategy,
    max_restarts: usize,
    restarts: Vec<Duration>,
    now: Duration,
    children: Vec<ModelChild>,
    alive: bool,
}

impl Model {
    fn crash(&mut self, index: usize, reason: &ExitReason) {
        if !self.alive || index >= self.children.len() || !self.children[index].running {
            return;
        }
        // What the signal does to a child that does not trap exits.
        let reason = match reason {
            ExitReason::Normal => return,
            ExitReason::Kill => ExitReason::Killed,
            other => other.clone(),
        };
        let child = &mut self.children[index];
        child.running = false;
        if !child.restart.restarts_after(&reason) {
            if child.restart == Restart::Temporary {
                self.children.remove(index);
            }
            return;
        }
        self.restarts.push(self.now);
        let now = self.now;
        self.restarts.retain(|&then| now - then < PERIOD);
        if self.restarts.len() > self.max_restarts {
            self.alive = false;
            self.children.clear();
            return;
        }
        let first = match self.strategy {
            SupStrategy::OneForOne => index,
            SupStrategy::OneForAll => 0,
            SupStrategy::RestForOne => index,
        };
        // The supervisor stops the running ones of the group (temporary ones go), then starts
        // every child of the group that is not running.
        let id = self.children[index].id.clone();
        let mut kept = Vec::new();
        for (at, mut child) in std::mem::take(&mut self.children).into_iter().enumerate() {
            let in_group = match self.strategy {
                SupStrategy::OneForOne => at == index,
                _ => at >= first,
            };
            if in_group && child.running && child.id != id {
                child.running = false;
                if child.restart == Restart::Temporary {
                    continue;
                }
            }
            if in_group && !child.running {
                child.running = true;
                child.generation += 1;
            }
            kept.push(child);
        }
        self.children = kept;
    }
}

/// A worker that waits forever (dies of any exit signal but `normal`).
fn idle(id: &str, restart: Restart) -> ChildSpec {
    ChildSpec::worker(id, |start| {
        start.spawn(
            |mut ctx: Ctx<()>| async move { while let Message::User(()) = ctx.recv().await {} },
        )
    })
    .restart(restart)
}

/// The supervisor's children as `(id, pid)`; `None` when it is gone.
fn observe(handle: &Handle, sup: Supervisor) -> Option<Vec<(String, Option<Pid>)>> {
    if !handle.is_alive(sup.pid()) {
        return None;
    }
    handle
        .block_on(move |mut ctx: Ctx<()>| async move { sup.which_children(&mut ctx).await })
        .ok()?
        .ok()
        .map(|children| children.into_iter().map(|c| (c.id, c.pid)).collect())
}

fn run(
    strategy: SupStrategy,
    restarts: Vec<Restart>,
    max_restarts: u32,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let rt = Runtime::builder()
        .threads(2)
        .clock(Clock::manual(&clock))
        .build();
    let h = rt.handle();
    let mut spec = SupervisorSpec::new(strategy).intensity(max_restarts, PERIOD);
    let mut model = Model {
        strategy,
        max_restarts: max_restarts as usize,
        restarts: Vec::new(),
        now: Duration::ZERO,
        children: Vec::new(),
        alive: true,
    };
    for (n, restart) in restarts.into_iter().enumerate() {
        let id = format!("c{n}");
        spec = spec.child(idle(&id, restart));
        model.children.push(ModelChild {
            id,
            restart,
            running: true,
            generation: 0,
        });
    }
    let sup = Supervisor::start(h, spec).unwrap();
    let watch = h.watch(sup.pid());
    let mut pids: Vec<(String, Option<Pid>)> = observe(h, sup).unwrap();
    let mut generations: Vec<(String, u32)> =
        model.children.iter().map(|c| (c.id.clone(), 0)).collect();
    for op in ops {
        match &op {
            Op::Advance(secs) => {
                clock.advance(Duration::from_secs(*secs));
                model.now += Duration::from_secs(*secs);
                continue;
            }
            Op::Crash(index, reason) => {
                if let Some(Some(pid)) = pids.get(*index).map(|(_, pid)| *pid)
                    && *reason != ExitReason::Normal
                {
                    let gone = h.watch(pid);
                    h.exit(pid, reason.clone());
                    gone.wait();
                }
                model.crash(*index, reason);
            }
        }
        if !model.alive {
            prop_assert_eq!(
                watch.wait_timeout(Duration::from_secs(10)),
                Some(ExitReason::Shutdown),
                "after {:?}",
                op
            );
            prop_assert_eq!(h.stats().live, 0);
            return Ok(());
        }
        let now = observe(h, sup);
        prop_assert!(
            now.is_some(),
            "the supervisor died after {:?}; model {:?}",
            op,
            model
        );
        let now = now.unwrap();
        let ids: Vec<&String> = now.iter().map(|(id, _)| id).collect();
        let model_ids: Vec<&String> = model.children.iter().map(|c| &c.id).collect();
        prop_assert_eq!(ids, model_ids, "children after {:?}", op);
        for ((id, pid), child) in now.iter().zip(&model.children) {
            prop_assert_eq!(
                pid.is_some(),
                child.running,
                "{} running, after {:?}",
                id,
                op
            );
            let before_pid = pids.iter().find(|(i, _)| i == id).and_then(|(_, p)| *p);
            let before_generation = generations
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, g)| *g)
                .unwrap_or(0);
            if child.running && before_pid.is_some() {
                prop_assert_eq!(
                    *pid != before_pid,
                    child.generation != before_generation,
                    "{} restarted, after {:?}",
                    id,
                    op
                );
            }
        }
        pids = now;
        generations = model
            .children
            .iter()
            .map(|c| (c.id.clone(), c.generation))
            .collect();
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn supervisor_matches_the_model_of_strategy_restart_type_and_intensity(
        strategy in strategy(),
        restarts in proptest::collection::vec(restart(), 1..4),
        max_restarts in 0..4u32,
        ops in proptest::collection::vec(op(), 1..16),
    ) {
        run(strategy, restarts, max_restarts, ops)?;
    }
}
