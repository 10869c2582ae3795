//! [`RedisStore`]: a [`JobStore`] on Redis, with reliable fetch.
//!
//! - A runner takes job ids with `BLMOVE` from the actor's queue into its own processing list,
//!   and removes an id from there only in the step that writes the job's result, its status
//!   and its reply (`take.rs`, `results.rs`).
//! - Every runner keeps a heartbeat key with a time to live and is listed in the actor's set
//!   of runners. [`RedisStore::reap`] (every runner calls it periodically) moves the ids in
//!   the processing list of a runner whose heartbeat expired back to the queue, atomically (a
//!   Lua script). A job requeued more often than its `retries` allow ends `error` instead
//!   (`reaper.rs`). Stops are routed to the runner that holds the job (`stops.rs`).
//! - Delivery is therefore at-least-once: a job whose runner died mid-run runs again.
//! - Redis unreachable or lost: every operation retries with capped exponential backoff (100 ms
//!   doubling to 5 s), logging each attempt, until it succeeds or the store is closed. Bad
//!   data is not a lost connection: it fails the job or the id that holds it, never the
//!   connection (`connection.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;
use tracing::warn;

use super::connection::{Connections, Failure, Link, Lua, reply};
use super::keys::{Keys, Profile};
use super::wire::{job_from_fields, job_to_fields, status_to_wire};
use crate::jobs::{DEFAULT_MAX_SCRIPT_BYTES, Job, JobStatus, JobStore, Priority, StoreError};

/// How a [`RedisStore`] connects and identifies itself.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://[:password@]host[:port][/db]`, `redis+unix:///path/to.sock`, or `rediss://…`
    /// with the `redis-tls` feature.
    pub url: String,
    /// The wire format.
    pub profile: Profile,
    /// This runner's id (unique among the runners sharing the Redis; default: a UUID).
    pub runner_id: String,
    /// How long the heartbeat lives without a refresh; a runner silent this long is dead.
    pub heartbeat_ttl: Duration,
    /// How long a reply list is kept for a client to read.
    pub reply_ttl: Duration,
    /// How long the hash of a job that ended `finished` is kept (its `EXPIRE`, set with the
    /// result). Default: a day.
    pub result_ttl: Duration,
    /// How long the hash of a job that ended in `error` (a failure, a timeout, a cancel, a
    /// malformed job, runners dead too often) is kept. Default: a week.
    pub dead_ttl: Duration,
    /// The largest `script` (and `env_vars`) a job may have, in bytes. A larger value is not
    /// read: its job ends `error` naming the field. Every other field the runner reads may
    /// hold [`MAX_FIELD_BYTES`].
    pub max_script_bytes: usize,
    /// The longest a job may run: a job that asks for a longer timeout gets this one.
    pub max_timeout: Duration,
}

/// The most bytes the runner reads of a job hash's fields other than `script` and
/// `env_vars` (ids, status, times, numbers); a larger value ends its job `error`.
pub const MAX_FIELD_BYTES: usize = 4096;

impl RedisConfig {
    /// The seconds a job hash that ended with `status` is kept.
    pub(super) fn keep_secs(&self, status: crate::jobs::JobStatus) -> u64 {
        let ttl = match status {
            crate::jobs::JobStatus::Finished => self.result_ttl,
            _ => self.dead_ttl,
        };
        ttl.as_secs().max(1)
    }

    /// Defaults for `url`: the Hero profile, a fresh runner id, a 10 s heartbeat, replies kept
    /// a day, finished jobs kept a day and failed ones a week, scripts up to
    /// [`DEFAULT_MAX_SCRIPT_BYTES`] (1 MiB), jobs run a day at most.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            profile: Profile::Hero,
            runner_id: uuid::Uuid::new_v4().to_string(),
            heartbeat_ttl: Duration::from_secs(10),
            reply_ttl: Duration::from_secs(24 * 3600),
            result_ttl: Duration::from_secs(24 * 3600),
            dead_ttl: Duration::from_secs(7 * 24 * 3600),
            max_script_bytes: DEFAULT_MAX_SCRIPT_BYTES,
            max_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

/// The most ids an actor's dead set keeps (the oldest are dropped from the set; their hashes
/// expire after `dead_ttl`).
pub const MAX_DEAD_JOBS: usize = 10_000;

/// A runner's work as its heartbeat announces it.
#[derive(Debug, Default)]
pub(super) struct Load {
    pub(super) workers: u64,
    pub(super) done: u64,
    pub(super) rate: f64,
    /// The previous report: when, and the jobs done then.
    pub(super) last: Option<(Instant, u64)>,
}

/// The Lua scripts the store runs.
pub(super) struct Scripts {
    pub(super) reap: Lua,
    pub(super) route_stop: Lua,
    pub(super) requeue: Lua,
    pub(super) reject: Lua,
    pub(super) fallback: Lua,
    pub(super) read: Lua,
    pub(super) promote: Lua,
    pub(super) take: Lua,
    pub(super) retry: Lua,
    pub(super) dead: Lua,
    pub(super) revive: Lua,
    pub(super) purge: Lua,
    pub(super) gate: Lua,
    pub(super) release: Lua,
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        reap: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/reap.lua")
        )),
        route_stop: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/route_stop.lua")
        )),
        requeue: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/requeue.lua")
        )),
        take: Lua::new(include_str!("lua/take.lua")),
        reject: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/reject.lua")
        )),
        fallback: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/fallback.lua")
        )),
        read: Lua::new(include_str!("lua/read.lua")),
        promote: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/promote.lua")
        )),
        retry: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/retry.lua")
        )),
        dead: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/dead.lua")
        )),
        revive: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/revive.lua")
        )),
        purge: Lua::new(include_str!("lua/purge.lua")),
        gate: Lua::new(include_str!("lua/gate.lua")),
        release: Lua::new(concat!(
            include_str!("lua/shared.lua"),
            include_str!("lua/release.lua")
        )),
    })
}

/// A job store on Redis. Every call blocks on network I/O: the worker pool makes them from
/// the runtime's blocking pool.
pub struct RedisStore {
    pub(super) conns: Connections,
    pub(super) keys: Keys,
    pub(super) config: RedisConfig,
    /// Ids this runner took and has not completed, per actor.
    pub(super) in_flight: Mutex<HashMap<String, HashSet<String>>>,
    /// A move into the processing list may have happened with its reply lost (a retried or
    /// failed take, an id that could not be given back): the next take first gives back
    /// what this runner holds without knowing it.
    pub(super) lost_track: AtomicBool,
    /// Set by [`RedisStore::wind_down`]: no more takes.
    pub(super) taking_stopped: AtomicBool,
    /// One lock per actor, held by each take and by `recover`. A pool whose dispatcher was
    /// killed may leave a take running on the blocking pool; its replacement's `recover` waits
    /// for it, so the ids that take moves to the processing list are given back too, instead
    /// of staying there (counted in flight) with no one to run them.
    pub(super) taking: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When the delayed jobs of each actor were last moved into its queue.
    pub(super) promoted: Mutex<HashMap<String, Instant>>,
    /// What the heartbeat announces of this runner's work ([`RedisStore::report_load`]).
    pub(super) load: Mutex<Load>,
    /// When this store was made (the runner's start, as announced).
    pub(super) started_at: SystemTime,
    /// Takes so far: whose turn it is among the priorities (`take.rs`).
    pub(super) takes: std::sync::atomic::AtomicU64,
    /// Whether Redis is known to hold `lua/dead.lua` (the results pipeline calls it by hash).
    pub(super) dead_loaded: AtomicBool,
    /// Results waiting to be written, and whether a thread is writing them.
    pub(super) writes: Mutex<Writes>,
    pub(super) written: Condvar,
}

#[derive(Default)]
pub(super) struct Writes {
    pub(super) pending: Vec<super::results::Ended>,
    pub(super) writing: bool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("profile", &self.keys.profile)
            .field("runner", &self.config.runner_id)
            .finish()
    }
}

impl RedisStore {
    /// A store; connects lazily (and retries) on first use.
    pub fn new(config: RedisConfig) -> Result<Self, StoreError> {
        #[cfg(feature = "redis-tls")]
        {
            // rustls needs a process-wide crypto provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(RedisStore {
            conns: Connections::new(&config.url)?,
            keys: Keys::new(config.profile),
            config,
            in_flight: Mutex::new(HashMap::new()),
            lost_track: AtomicBool::new(false),
            taking_stopped: AtomicBool::new(false),
            taking: Mutex::new(HashMap::new()),
            promoted: Mutex::new(HashMap::new()),
            load: Mutex::new(Load::default()),
            started_at: SystemTime::now(),
            dead_loaded: AtomicBool::new(false),
            takes: std::sync::atomic::AtomicU64::new(0),
            writes: Mutex::new(Writes::default()),
            written: Condvar::new(),
        })
    }

    /// The keys of its profile.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// Its runner id.
    pub fn runner_id(&self) -> &str {
        &self.config.runner_id
    }

    pub(super) fn in_flight(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Winds the store down for a shutdown: takes end at once (a take waiting for Redis gives
    /// up), and from `deadline` on no operation retries: one that cannot reach Redis by then
    /// fails with [`StoreError::Closed`]. Each socket call is bounded by the time left (one
    /// under way now ends within the Redis I/O timeout, 4 s, plus a blocking command's wait,
    /// 1 s at most), so a result write blocked on a paused Redis gives up by then too. A
    /// result not written then is lost, but its id stays in this runner's processing list,
    /// so another runner's reaper gives the job back to the queue once this runner's
    /// heartbeat expires. So a runner stops even with Redis gone.
    pub fn wind_down(&self, deadline: Instant) {
        self.taking_stopped.store(true, Ordering::SeqCst);
        self.conns.wind_down(deadline);
    }

    /// How the Lua scripts settle the dependents of a job that ended (`settle_dependents` in
    /// `lua/shared.lua`), as JSON.
    pub(super) fn settle_config(&self) -> String {
        let profile = self.keys.profile;
        serde_json::json!({
            "prefix": self.keys.job(""),
            "queue": self.keys.queue(""),
            "queue_high": self.keys.queue_of("", Priority::High),
            "queue_low": self.keys.queue_of("", Priority::Low),
            "reply": self.keys.reply(""),
            "named": super::wire::reply_named_in_hash(profile),
            "waiting": status_to_wire(profile, JobStatus::Waiting),
            "dispatched": status_to_wire(profile, JobStatus::Dispatched),
            "error": status_to_wire(profile, JobStatus::Error),
            "finished": [status_to_wire(profile, JobStatus::Finished), "finished"],
            "now": super::wire::iso8601(SystemTime::now()),
            "keep": self.config.keep_secs(JobStatus::Error),
            "ttl": self.config.reply_ttl.as_secs().max(1),
        })
        .to_string()
    }

    /// Queues the jobs waiting on `ended` (id, and whether it finished) whose prerequisites
    /// have now all finished, or ends them `error` if it failed (`lua/release.lua`). A
    /// failure is logged: the waiting jobs stay waiting.
    pub(super) fn release_dependents(&self, ended: &[(String, bool)]) {
        if ended.is_empty() {
            return;
        }
        let script = &scripts().release;
        let mut call = script.call(0);
        call.arg(self.settle_config());
        for (id, finished) in ended {
            call.arg(id).arg(if *finished { "1" } else { "0" });
        }
        if let Err(error) = self.run("release", |c| c.eval_one(script, call.clone())) {
            warn!(jobs = ended.len(), %error, "could not settle the jobs waiting on ended jobs");
        }
    }

    /// Runs `op` on a connection, retrying while Redis is unreachable (see `connection.rs`);
    /// any other failure is returned at once.
    pub(super) fn run<T>(
        &self,
        what: &str,
        op: impl FnMut(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.conns
            .run(what, || false, op)
            .map_err(|failure| failure.store_error(what))
    }

    /// Gives a job taken but not finished back to its queue (at the end taken next), as if
    /// it had never been taken.
    pub fn release(&self, job: &Job) -> Result<(), StoreError> {
        self.release_id(&job.actor_id, job.id.as_bytes())
    }

    pub(super) fn release_id(&self, actor: &str, id: &[u8]) -> Result<(), StoreError> {
        let status = status_to_wire(self.keys.profile, JobStatus::Dispatched);
        self.requeue(actor, id, status, || false)?;
        if let Some(ids) = self.in_flight().get_mut(actor)
            && let Ok(id) = std::str::from_utf8(id)
        {
            ids.remove(id);
        }
        Ok(())
    }

    /// Moves `id` from this runner's processing list back to the queue if it is listed
    /// there, setting its job's status to `status` (unless empty). Whether it moved it.
    /// `stop` ends its retries.
    pub(super) fn requeue(
        &self,
        actor: &str,
        id: &[u8],
        status: &str,
        stop: impl Fn() -> bool,
    ) -> Result<bool, StoreError> {
        let processing = self.keys.processing(actor, &self.config.runner_id);
        let mut call = scripts().requeue.call(5);
        call.arg(&processing)
            .arg(self.keys.queue(actor))
            .arg(job_key(self.keys, id))
            .arg(self.keys.queue_of(actor, Priority::High))
            .arg(self.keys.queue_of(actor, Priority::Low))
            .arg(id)
            .arg(status);
        let moved = self.run_unless("release", stop, |c| {
            c.eval_one(&scripts().requeue, call.clone())
        })?;
        Ok(reply::int(moved).unwrap_or(0) == 1)
    }
}

/// A job's hash key for an id of any bytes.
pub(super) fn job_key(keys: Keys, id: &[u8]) -> Vec<u8> {
    let mut key = keys.job("").into_bytes();
    key.extend_from_slice(id);
    key
}

/// A reply list's key (the default name) for an id of any bytes.
pub(super) fn reply_key(keys: Keys, id: &[u8]) -> Vec<u8> {
    let mut key = keys.reply("").into_bytes();
    key.extend_from_slice(id);
    key
}

impl JobStore for RedisStore {
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        if self.conns.is_closed() {
            return Err(StoreError::Closed);
        }
        let key = self.keys.job(&job.id);
        let fields = job_to_fields(self.keys.profile, &job);
        let queue = self.keys.queue_of(&job.actor_id, job.priority);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| value.clone().into_bytes())
        };
        let ours = vec![field("created_at"), field("script")];
        let mut write = redis::pipe();
        write.atomic().hset_multiple(&key, &fields);
        // A job for later waits in the delayed set, scored by when it may run; the runners
        // move it into the queue then.
        match job.run_at.and_then(|at| at.duration_since(UNIX_EPOCH).ok()) {
            Some(at) if job.run_at.is_some_and(|at| at > SystemTime::now()) => {
                write.zadd(
                    self.keys.delayed(&job.actor_id),
                    &job.id,
                    at.as_millis() as u64,
                );
            }
            _ => {
                write.lpush(&queue, &job.id);
            }
        }
        // A transaction of its own, as the write is (the lost-reply test counts them).
        let mut exists = redis::pipe();
        exists.atomic().cmd("EXISTS").arg(&key);
        let mut theirs = redis::cmd("HMGET");
        theirs.arg(&key).arg("created_at").arg("script");
        // A write whose reply was lost is retried: the hash is then there, and ours.
        let mut sent = false;
        let created = self.run("submit", |c| {
            let found = c.pipeline(&exists)?.pop().unwrap_or(Ok(Value::Nil))?;
            if reply::int(found).unwrap_or(0) > 0 {
                if !sent {
                    return Ok(false);
                }
                let theirs: Vec<Option<Vec<u8>>> = reply::items(c.query(&theirs)?)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| reply::bytes(v).ok().flatten())
                    .collect();
                return Ok(theirs == ours);
            }
            sent = true;
            for reply in c.pipeline(&write)? {
                reply?;
            }
            Ok(true)
        })?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Duplicate(job.id))
        }
    }

    fn take(&self, actor_id: &str, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        self.taking(actor_id, || {
            RedisStore::take_jobs(self, actor_id, max, wait)
        })
    }

    fn start(&self, job: &Job) -> Result<(), StoreError> {
        RedisStore::start_job(self, job)
    }

    fn retry(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        RedisStore::retry_job(self, job, delay)
    }

    fn complete(&self, job: &Job) -> Result<(), StoreError> {
        RedisStore::complete_job(self, job)
    }

    /// The job as its hash says. Fields that are not UTF-8 are read with `U+FFFD` in place
    /// of their bad bytes; a hash that is no job is an error (never retried).
    fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(self.keys.job(id));
        let hash = self.run("get", |c| c.query(&hgetall))?;
        let mut fields = HashMap::new();
        let mut pairs = reply::items(hash).unwrap_or_default().into_iter();
        while let (Some(name), Some(value)) = (pairs.next(), pairs.next()) {
            fields.insert(reply::lossy(name), reply::lossy(value));
        }
        if fields.is_empty() {
            return Ok(None);
        }
        // A hash that names no actor (a rhailib task names none): reported as `unknown`.
        let actor = fields
            .get("actor_id")
            .filter(|actor| !actor.is_empty())
            .map_or("unknown", String::as_str);
        let mut job = job_from_fields(self.keys.profile, id, actor, &fields)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        job.started_at = fields
            .get("started_at")
            .and_then(|t| super::wire::parse_time(t));
        job.finished_at = fields
            .get("finished_at")
            .and_then(|t| super::wire::parse_time(t));
        Ok(Some(job))
    }

    fn wait(&self, id: &str, timeout: Duration) -> Result<Job, StoreError> {
        let deadline = Instant::now() + timeout;
        loop {
            let job = self
                .get(id)?
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            if job.status.is_final() {
                return Ok(job);
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Timeout(id.to_string()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn close(&self) {
        self.conns.close();
    }

    /// Queued jobs of every priority.
    fn queued(&self, actor_id: &str) -> Result<usize, StoreError> {
        let mut pipe = redis::pipe();
        for priority in [Priority::High, Priority::Normal, Priority::Low] {
            pipe.cmd("LLEN").arg(self.keys.queue_of(actor_id, priority));
        }
        let lens = self.run("queued", |c| c.pipeline(&pipe))?;
        Ok(lens
            .into_iter()
            .map(|len| {
                len.ok()
                    .and_then(|l| reply::int(l).ok())
                    .unwrap_or(0)
                    .max(0) as usize
            })
            .sum())
    }

    fn release(&self, job: &Job) -> Result<(), StoreError> {
        RedisStore::release(self, job)
    }

    fn recover(&self, actor_id: &str) -> Result<usize, StoreError> {
        // A take an earlier pool left running ends first (see `taking`).
        self.taking(actor_id, || self.recover_taken(actor_id))
    }
}

impl RedisStore {
    /// `recover`'s work, under the actor's take lock.
    fn recover_taken(&self, actor_id: &str) -> Result<usize, StoreError> {
        // Whatever an earlier pool of this runner held is either finished (its result is in
        // the writer: flushed first) or abandoned.
        self.flush();
        self.in_flight().remove(actor_id);
        let mut lmove = redis::cmd("LMOVE");
        lmove
            .arg(self.keys.processing(actor_id, &self.config.runner_id))
            .arg(self.keys.queue(actor_id))
            // Newest first to the taking end: the oldest is taken next.
            .arg("LEFT")
            .arg("RIGHT");
        let mut moved = 0;
        while !matches!(self.run("recover", |c| c.query(&lmove))?, Value::Nil) {
            moved += 1;
        }
        Ok(moved)
    }

    /// Runs `f` holding `actor_id`'s take lock (see the `taking` field).
    fn taking<T>(&self, actor_id: &str, f: impl FnOnce() -> T) -> T {
        let lock = {
            let mut locks = self.taking.lock().unwrap_or_else(PoisonError::into_inner);
            match locks.get(actor_id) {
                Some(lock) => Arc::clone(lock),
                None => Arc::clone(locks.entry(actor_id.to_owned()).or_default()),
            }
        };
        let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
        f()
    }

    /// Closes the store for good (as [`JobStore::close`]).
    pub(super) fn is_closed(&self) -> bool {
        self.conns.is_closed()
    }

    /// Runs `op`, giving up (with [`StoreError::Closed`]) as soon as `stop` holds.
    pub(super) fn run_unless<T>(
        &self,
        what: &str,
        stop: impl Fn() -> bool,
        op: impl FnMut(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.conns
            .run(what, stop, op)
            .map_err(|failure| failure.store_error(what))
    }

    /// Runs `op`, returning its failure as it is (for callers that act on its kind).
    pub(super) fn try_run<T>(
        &self,
        what: &str,
        op: impl FnMut(&mut Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, Failure> {
        self.conns.run(what, || false, op)
    }
}
