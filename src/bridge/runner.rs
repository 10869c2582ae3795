//! A runner: a worker pool fed from Redis, plus the bridge process that keeps the runner's
//! heartbeat, reaps dead runners' jobs, and obeys the stop queue and the control list.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::stops::StopRoute;
use super::store::{RedisConfig, RedisStore};
use crate::jobs::{
    ActorFactory, JobActor, JobStore, PoolConfig, PoolError, PoolStats, StoreError, WorkerPool,
};
use crate::script::{RhaiActor, SandboxConfig};
use crate::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use crate::{Ctx, ExitReason, Handle, Message};

/// What a runner serves and how.
#[derive(Clone)]
pub struct RunnerConfig {
    /// The Redis connection and profile.
    pub redis: RedisConfig,
    /// The actor (queue) it serves.
    pub actor: String,
    /// The worker pool's settings (its `actor_id` is set to `actor`).
    pub pool: PoolConfig,
    /// The sandbox of its Rhai workers.
    pub sandbox: SandboxConfig,
    /// The job actors, if not the built-in [`RhaiActor`] with `sandbox`.
    pub actors: Option<ActorFactory>,
}

impl RunnerConfig {
    /// Defaults for serving `actor` from the Redis at `url`: Rhai workers with the default
    /// sandbox, a worker per core.
    pub fn new(url: impl Into<String>, actor: impl Into<String>) -> Self {
        let actor = actor.into();
        RunnerConfig {
            redis: RedisConfig::new(url),
            pool: PoolConfig::new(actor.clone()),
            actor,
            sandbox: SandboxConfig::default(),
            actors: None,
        }
    }
}

impl std::fmt::Debug for RunnerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerConfig")
            .field("redis", &self.redis)
            .field("actor", &self.actor)
            .field("pool", &self.pool)
            .field("sandbox", &self.sandbox)
            .field("actors", &self.actors.is_some())
            .finish()
    }
}

/// Why a runner could not start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunnerError {
    /// The store could not be made (a bad URL).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pool could not start.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The runner's supervisor (pool and bridge) could not start.
    #[error("the runner could not start: {0}")]
    Bridge(String),
}

/// A running runner.
pub struct Runner {
    store: Arc<RedisStore>,
    pool: WorkerPool,
    supervisor: Supervisor,
    handle: Handle,
    /// The watch on the runner's supervisor.
    exit: std::sync::Mutex<crate::ExitWatch>,
}

impl Runner {
    /// Starts the worker pool and the supervised bridge process. Jobs are taken once the pool
    /// is up; Redis being unreachable is retried with backoff, not an error. Build the runtime
    /// with the stack its sandbox needs
    /// (`Runtime::builder().blocking_stack_size(Sandbox::stack_size(&config.sandbox.limits))`),
    /// as the `baobab` binary does, or each script gets a thread of its own.
    ///
    /// # Panics
    /// On a scheduler thread.
    pub fn start(handle: &Handle, config: RunnerConfig) -> Result<Runner, RunnerError> {
        let store = Arc::new(RedisStore::new(config.redis.clone())?);
        let actor = config.actor.clone();
        let sandbox = config.sandbox.clone();
        let factory: ActorFactory = match &config.actors {
            Some(factory) => Arc::clone(factory),
            None => {
                let actor = actor.clone();
                Arc::new(move || {
                    Arc::new(RhaiActor::new(actor.clone(), sandbox.clone())) as Arc<dyn JobActor>
                })
            }
        };
        let mut pool_config = config.pool.clone();
        pool_config.actor_id = actor.clone();
        pool_config.requeue_on_shutdown = true;
        if pool_config.prefetch == 0 {
            // One batch ahead per worker slot: takes overlap with the work.
            pool_config.prefetch =
                pool_config.workers * pool_config.concurrency.max(1) * pool_config.max_batch.max(1);
        }
        let tick = (config.redis.heartbeat_ttl / 3).max(Duration::from_millis(10));
        // The pool's dispatcher is registered under a name unique to this runner, so the
        // bridge and the handle find the current one after a restart.
        let name = format!("baobab-pool-{}", store.runner_id());
        let pool = WorkerPool::named(handle, &name);
        let bridge_child = {
            let (store, pool, actor) = (store.clone(), pool.clone(), actor.clone());
            ChildSpec::worker("redis-bridge", move |start| {
                let (store, pool, actor) = (store.clone(), pool.clone(), actor.clone());
                start.spawn(move |ctx: Ctx<BridgeMsg>| bridge(ctx, store, pool, actor, tick))
            })
            .restart(crate::supervisor::Restart::Transient)
        };
        // One for all: a crashed pool takes the bridge down with it and both restart; the
        // new dispatcher first gives back what the old one held.
        let spec = SupervisorSpec::new(Strategy::OneForAll)
            .intensity(10, Duration::from_secs(10))
            .child(WorkerPool::child_spec(
                &name,
                store.clone(),
                factory,
                pool_config,
            ))
            .child(bridge_child);
        let supervisor =
            Supervisor::start(handle, spec).map_err(|r| RunnerError::Bridge(r.to_string()))?;
        // Ready once the dispatcher has registered (its workers started).
        let start = std::time::Instant::now();
        while pool.pid().is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(RunnerError::Pool(PoolError::Start(
                    "the worker pool did not start".into(),
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        info!(actor = %actor, runner = %store.runner_id(), "runner started");
        let exit = std::sync::Mutex::new(handle.watch(supervisor.pid()));
        Ok(Runner {
            store,
            pool,
            supervisor,
            handle: handle.clone(),
            exit,
        })
    }

    /// Why the runner stopped, once it has on its own (`None` while it runs): its worker pool
    /// crashed more often than its supervisor's intensity allows (10 restarts in 10 s). What
    /// its pool held went back to the queue (or stays in its processing list, for the other
    /// runners' reapers). Does not wait.
    pub fn exited(&self) -> Option<ExitReason> {
        self.exit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .exited()
    }

    /// The store it takes jobs from.
    pub fn store(&self) -> &Arc<RedisStore> {
        &self.store
    }

    /// Its worker pool (to resize it, read its stats).
    pub fn pool(&self) -> &WorkerPool {
        &self.pool
    }

    /// Stops taking jobs, lets running ones finish for up to `grace`, gives the rest back to
    /// the queue, stops the bridge. Returns the pool's final stats.
    ///
    /// With Redis unreachable it still returns, within about `grace` + 5 s: what could not be
    /// written by then is left to the other runners' reapers (see
    /// [`RedisStore::wind_down`]).
    pub fn shutdown(&self, grace: Duration) -> Result<PoolStats, PoolError> {
        self.store
            .wind_down(std::time::Instant::now() + grace + WIND_DOWN_MARGIN);
        // The pool drains first (it takes nothing more) while the bridge keeps the heartbeat
        // alive, so no other runner reaps jobs still running here; then everything stops.
        let stats = self.pool.shutdown(grace);
        self.store.flush();
        self.store.close();
        self.supervisor.shutdown(&self.handle);
        stats
    }
}

/// How long past its grace a shutting-down runner keeps trying to reach Redis.
pub const WIND_DOWN_MARGIN: Duration = Duration::from_secs(5);

pub(crate) enum BridgeMsg {
    Tick,
    Beat(Result<(u64, u64), StoreError>),
    Command(Result<Option<(String, String)>, StoreError>),
    /// Where a popped stop found its job.
    Routed(String, Result<StopRoute, StoreError>),
}

/// The bridge process: a heartbeat and a reap every `tick`, and the stop queue and the
/// control list watched in turn. All Redis I/O runs on the blocking pool.
async fn bridge(
    mut ctx: Ctx<BridgeMsg>,
    store: Arc<RedisStore>,
    pool: WorkerPool,
    actor: String,
    tick: Duration,
) -> ExitReason {
    let watch = |ctx: &Ctx<BridgeMsg>| {
        let (store, actor) = (store.clone(), actor.clone());
        ctx.spawn_blocking(
            move || store.next_command(&actor, Duration::from_secs(1)),
            BridgeMsg::Command,
        );
    };
    ctx.send(&ctx.addr(), BridgeMsg::Tick).ok();
    watch(&ctx);
    loop {
        match ctx.recv().await {
            Message::User(BridgeMsg::Tick) => {
                let (store, actor, pool) = (store.clone(), actor.clone(), pool.clone());
                ctx.spawn_blocking(
                    move || {
                        store.heartbeat(&actor)?;
                        let reaped = store.reap(&actor);
                        // For the next beat to announce (after this one: a busy pool never
                        // delays a heartbeat).
                        if let Ok(stats) = pool.stats_within(Duration::from_secs(1)) {
                            store.report_load(stats.workers as u64, stats.finished + stats.failed);
                        }
                        reaped
                    },
                    BridgeMsg::Beat,
                );
                ctx.send_after(&ctx.addr(), BridgeMsg::Tick, tick);
            }
            Message::User(BridgeMsg::Beat(result)) => {
                if let Err(error) = result {
                    warn!(%error, "heartbeat or reap failed");
                }
            }
            Message::User(BridgeMsg::Command(result)) => {
                match result {
                    Ok(Some((kind, id))) if kind == "stop" => {
                        info!(job = %id, "stop requested");
                        let (store, actor) = (store.clone(), actor.clone());
                        ctx.spawn_blocking(
                            move || {
                                let route = store.route_stop(&actor, &id);
                                (id, route)
                            },
                            |(id, route)| BridgeMsg::Routed(id, route),
                        );
                    }
                    Ok(Some((_, command))) => match parse_command(&command) {
                        Some(Command::Workers(n)) => pool.set_workers(n),
                        Some(Command::Stop(id)) => {
                            info!(job = %id, "stop passed on by another runner");
                            pool.cancel(&id);
                        }
                        None => warn!(command, "unknown control command"),
                    },
                    Ok(None) => {}
                    Err(StoreError::Closed) => return ExitReason::Normal,
                    Err(error) => warn!(%error, "watching the stop queue failed"),
                }
                watch(&ctx);
            }
            Message::User(BridgeMsg::Routed(id, route)) => match route {
                Ok(StopRoute::Here) => pool.cancel(&id),
                Ok(route) => info!(job = %id, ?route, "stop routed"),
                Err(error) => {
                    // Cancel it here if it is here; elsewhere the stop is lost (logged).
                    warn!(job = %id, %error, "could not route a stop");
                    pool.cancel(&id);
                }
            },
            Message::Exit(_) | Message::Down(_) => {}
        }
    }
}

/// A command read from a runner's control list.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// `workers N`: resize the pool.
    Workers(usize),
    /// `stop ID`: cancel a job this runner holds (passed on by the runner that popped the
    /// stop).
    Stop(String),
}

fn parse_command(command: &str) -> Option<Command> {
    let mut words = command.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("workers"), Some(n), None) => n.parse().ok().map(Command::Workers),
        (Some("stop"), Some(id), None) => Some(Command::Stop(id.to_string())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{Command, parse_command};

    #[test]
    fn control_commands_parse() {
        assert_eq!(parse_command("workers 4"), Some(Command::Workers(4)));
        assert_eq!(
            parse_command("stop job-1"),
            Some(Command::Stop("job-1".into()))
        );
        assert_eq!(parse_command("workers four"), None);
        assert_eq!(parse_command("stop"), None);
        assert_eq!(parse_command("stop a b"), None);
        assert_eq!(parse_command("restart"), None);
    }
}
