//! [`RedisStore`]: a [`JobStore`] on Redis, with reliable fetch.
//!
//! - A runner takes job ids with `BLMOVE` from the actor's queue into its own processing list,
//!   and removes an id from there only in the pipeline that writes the job's result, its
//!   status and its reply, after them (a crash in between only requeues an ended job, which
//!   is then not run again).
//! - Every runner keeps a heartbeat key with a time to live and is listed in the actor's set
//!   of runners. [`RedisStore::reap`] (every runner calls it periodically) moves the ids in
//!   the processing list of a runner whose heartbeat expired back to the queue, atomically (a
//!   Lua script). A job requeued more often than its `retries` allow ends `error` instead.
//! - Delivery is therefore at-least-once: a job whose runner died mid-run runs again.
//! - Redis unreachable or lost: every operation retries with capped exponential backoff (100 ms
//!   doubling to 5 s), logging each attempt, until it succeeds or the store is closed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use redis::{Commands, Connection, RedisError};
use tracing::{debug, info, warn};

use super::keys::{Keys, Profile};
use super::wire::{
    ending_fields, iso8601, job_from_fields, job_to_fields, result_fields, status_to_wire,
};
use crate::jobs::{Job, JobStatus, JobStore, StoreError};

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
}

impl RedisConfig {
    /// Defaults for `url`: the Hero profile, a fresh runner id, a 10 s heartbeat, replies kept
    /// a day.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            profile: Profile::Hero,
            runner_id: uuid::Uuid::new_v4().to_string(),
            heartbeat_ttl: Duration::from_secs(10),
            reply_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The backoff between attempts: 100 ms, doubling, at most 5 s.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A reply that takes longer than this means a dead connection.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Moves a dead runner's processing list back to its queue, or ends jobs requeued too often;
/// skips what it cannot write. See the script for its keys and arguments.
const REAP: &str = include_str!("lua/reap.lua");

/// Finds where a stopped job is and acts on it, atomically; a key of another type where a list
/// is expected holds nothing. See the script for its keys and arguments.
const ROUTE_STOP: &str = include_str!("lua/route_stop.lua");

/// Moves id ARGV[1] from list KEYS[1] to the tail of KEYS[2] if it is in KEYS[1]; 1 if moved.
const MOVE_IF_LISTED: &str = r#"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) > 0 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"#;

/// Where a stop request found its job: see [`RedisStore::route_stop`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopRoute {
    /// Taken by this runner: the caller cancels it in its pool.
    Here,
    /// Taken by another runner: the stop was passed on to that runner's control list as
    /// `stop ID`.
    Forwarded {
        /// The runner that holds the job.
        runner: String,
    },
    /// Ended `error: cancelled` here, without running (again): it was still queued, or held
    /// by `dead_runner`, whose heartbeat has expired (the reaper would have run it again).
    /// That runner also gets `stop ID` on its control list (kept for the reply TTL), in case
    /// it is alive but was cut off from Redis: if it finishes the job before it reads the
    /// stop, its result overwrites `cancelled` and a second reply is pushed.
    Cancelled {
        /// The runner, with an expired heartbeat, that held it, if one did.
        dead_runner: Option<String>,
    },
    /// The job had already ended: nothing to do.
    Ended,
    /// No job hash under this id.
    Unknown,
    /// The job has not ended but is in neither the actor's queue nor a runner's processing
    /// list (queued for another actor, or not queued yet): left alone. Also a stop that could
    /// not be passed on to the runner holding the job (its control list is no list).
    NotFound,
}

/// A job's hash, or (`Err`) the type its key holds instead (`none`: no key).
type HashOrKind = Result<HashMap<String, String>, String>;

/// A job store on Redis. Every call blocks on network I/O: the worker pool makes them from
/// the runtime's blocking pool.
pub struct RedisStore {
    client: redis::Client,
    keys: Keys,
    config: RedisConfig,
    /// Idle connections (a blocking take holds one for its whole wait).
    idle: Mutex<Vec<Connection>>,
    /// Ids this runner took and has not completed, per actor.
    in_flight: Mutex<HashMap<String, HashSet<String>>>,
    closed: AtomicBool,
    /// A move into the processing list may have happened with its reply lost (a retried or
    /// failed take, an id that could not be given back): the next take first gives back
    /// what this runner holds without knowing it.
    lost_track: AtomicBool,
    /// Set by [`RedisStore::wind_down`]: no more takes.
    taking_stopped: AtomicBool,
    /// Set by [`RedisStore::wind_down`]: no retry past this instant.
    give_up_at: Mutex<Option<Instant>>,
    /// Results waiting to be written, and whether a thread is writing them.
    writes: Mutex<Writes>,
    written: Condvar,
}

#[derive(Default)]
struct Writes {
    pending: Vec<Job>,
    writing: bool,
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
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| StoreError::Backend(format!("bad Redis URL {:?}: {e}", config.url)))?;
        Ok(RedisStore {
            client,
            keys: Keys::new(config.profile),
            config,
            idle: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            lost_track: AtomicBool::new(false),
            taking_stopped: AtomicBool::new(false),
            give_up_at: Mutex::new(None),
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

    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Winds the store down for a shutdown: takes end at once (a take waiting for Redis gives
    /// up), and from `deadline` on no operation retries: one that cannot reach Redis by then
    /// fails with [`StoreError::Closed`]. A result not written then is lost, but its id stays
    /// in this runner's processing list, so another runner's reaper gives the job back to the
    /// queue once this runner's heartbeat expires. So a runner stops even with Redis gone.
    pub fn wind_down(&self, deadline: Instant) {
        self.taking_stopped.store(true, Ordering::SeqCst);
        *self
            .give_up_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(deadline);
    }

    /// Runs `op` on a connection, reconnecting and retrying with backoff while Redis is
    /// unreachable. Errors that are not about the connection are returned at once.
    fn with_conn<T>(
        &self,
        what: &str,
        op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.with_conn_unless(what, || false, op)
    }

    /// [`with_conn`](Self::with_conn) that stops retrying once `stop` holds (or the
    /// wind-down's deadline has passed), with [`StoreError::Closed`].
    fn with_conn_unless<T>(
        &self,
        what: &str,
        stop: impl Fn() -> bool,
        mut op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut backoff = BACKOFF_MIN;
        let mut attempt = 0u32;
        loop {
            let conn = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match conn {
                Some(conn) => Ok(conn),
                None => self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(5))
                    .and_then(|conn| {
                        // A half-open connection must fail, not hang (longer than any
                        // blocking command's own wait).
                        conn.set_read_timeout(Some(IO_TIMEOUT))?;
                        conn.set_write_timeout(Some(IO_TIMEOUT))?;
                        Ok(conn)
                    }),
            };
            let error = match conn {
                Ok(mut conn) => match op(&mut conn) {
                    Ok(value) => {
                        self.idle
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(conn);
                        if attempt > 0 {
                            info!(what, attempts = attempt + 1, "Redis reachable again");
                        }
                        return Ok(value);
                    }
                    Err(error) if !is_connection_error(&error) => {
                        self.idle
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(conn);
                        return Err(StoreError::Backend(format!("{what}: {error}")));
                    }
                    Err(error) => {
                        // The pooled connections are likely as dead as this one.
                        self.idle
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .clear();
                        error
                    }
                },
                Err(error) => error,
            };
            attempt += 1;
            if self.closed.load(Ordering::Relaxed) && attempt > 1 || stop() {
                return Err(StoreError::Closed);
            }
            let give_up_at = *self
                .give_up_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            // Past the deadline, one more try on a fresh connection, then no more.
            if give_up_at.is_some_and(|at| now >= at) && attempt > 1 {
                warn!(what, attempt, %error, "Redis unreachable; winding down, giving up");
                return Err(StoreError::Closed);
            }
            warn!(what, attempt, retry_in = ?backoff, %error, "Redis unreachable; retrying");
            let pause =
                give_up_at.map_or(backoff, |at| backoff.min(at.saturating_duration_since(now)));
            std::thread::sleep(pause);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Refreshes this runner's heartbeat and its place in the actor's set of runners.
    pub fn heartbeat(&self, actor: &str) -> Result<(), StoreError> {
        let key = self.keys.heartbeat(&self.config.runner_id);
        let runners = self.keys.runners(actor);
        let ttl = self.config.heartbeat_ttl.as_millis().max(1) as u64;
        let me = self.config.runner_id.clone();
        self.with_conn("heartbeat", |c| {
            redis::pipe()
                .cmd("SET")
                .arg(&key)
                .arg("alive")
                .arg("PX")
                .arg(ttl)
                .ignore()
                .sadd(&runners, &me)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Takes back the jobs of runners of `actor` whose heartbeat expired: requeued, or ended
    /// `error` if requeued more often than their retries allow. Returns (requeued, failed).
    /// What it cannot take back (a processing list that is no list, a queue that takes no
    /// id) is logged and left as it is; it does not stop the rest.
    pub fn reap(&self, actor: &str) -> Result<(u64, u64), StoreError> {
        let keys = self.keys;
        let (heartbeat_head, heartbeat_tail) = around_runner(keys.heartbeat(RUNNER));
        let script = redis::Script::new(REAP);
        let now = iso8601(SystemTime::now());
        let (moved, failed, skipped): (u64, u64, u64) = self.with_conn("reap", |c| {
            script
                .key(keys.runners(actor))
                .arg(&self.config.runner_id)
                .arg(&heartbeat_head)
                .arg(&heartbeat_tail)
                .arg(keys.processing(actor, ""))
                .arg(keys.queue(actor))
                .arg(keys.job(""))
                .arg(status_to_wire(keys.profile, JobStatus::Error))
                .arg(keys.reply(""))
                .arg(reply_named_in_hash(keys.profile))
                .arg(&now)
                .arg(status_to_wire(keys.profile, JobStatus::Finished))
                .arg("finished")
                .invoke(c)
        })?;
        if moved + failed > 0 {
            warn!(
                actor,
                requeued = moved,
                failed,
                "took back the jobs of dead runners"
            );
        }
        if skipped > 0 {
            warn!(
                actor,
                skipped,
                "could not take back some entries of dead runners (a processing list that is \
                 no list, or a queue that took no id): left as they were"
            );
        }
        Ok((moved, failed))
    }

    /// Puts the ids in this runner's own processing list that it does not know it holds back
    /// in the queue (a take whose reply was lost with the connection).
    fn recover_own(&self, actor: &str, stop: impl Fn() -> bool) -> Result<(), StoreError> {
        let processing = self.keys.processing(actor, &self.config.runner_id);
        // What is in flight first, then the list: ids only join `in_flight` in a take (and
        // takes are one at a time), while results and releases leave the list before they
        // leave `in_flight`. So a listed id not in flight was lost.
        let known = self.in_flight().get(actor).cloned().unwrap_or_default();
        let listed: Vec<String> =
            self.with_conn_unless("recover", &stop, |c| c.lrange(&processing, 0, -1))?;
        let queue = self.keys.queue(actor);
        let script = redis::Script::new(MOVE_IF_LISTED);
        for id in listed.into_iter().filter(|id| !known.contains(id)) {
            let moved: bool = self.with_conn_unless("recover", &stop, |c| {
                script.key(&processing).key(&queue).arg(&id).invoke(c)
            })?;
            if moved {
                warn!(actor, job = %id, "requeued a job this runner had lost track of");
            }
        }
        Ok(())
    }

    /// Runs a take's move of ids into the processing list. A move whose reply is lost with
    /// the connection is retried by `with_conn`; the ids moved by the lost attempt are then in
    /// the processing list, unknown: so a retried or failed move sets `lost_track`.
    fn moving<T>(
        &self,
        stop: impl Fn() -> bool,
        mut op: impl FnMut(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        let result = self.with_conn_unless("take", stop, |c| {
            attempts += 1;
            op(c)
        });
        if attempts > 1 || result.is_err() {
            self.lost_track.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Ends a job whose hash is unusable: `error` with `message` if a hash exists, else only
    /// logged. Its id leaves the processing list either way.
    fn reject(&self, actor: &str, id: &str, message: &str, hash_exists: bool) {
        let processing = self.keys.processing(actor, &self.config.runner_id);
        let key = self.keys.job(id);
        let profile = self.keys.profile;
        let reply = self.keys.reply(id);
        warn!(actor, job = %id, message, "malformed job skipped");
        let result = self.with_conn("reject", |c| {
            let mut pipe = redis::pipe();
            pipe.atomic();
            if hash_exists {
                pipe.hset_multiple(
                    &key,
                    &[
                        ("status", status_to_wire(profile, JobStatus::Error)),
                        ("error", message),
                        ("updated_at", &iso8601(SystemTime::now())),
                    ],
                )
                .ignore();
                if profile == Profile::Hero {
                    pipe.lpush(&reply, status_to_wire(profile, JobStatus::Error))
                        .ignore();
                }
            }
            pipe.lrem(&processing, 1, id).ignore();
            pipe.query::<()>(c)
        });
        if let Err(error) = result {
            warn!(job = %id, %error, "could not record a malformed job");
        }
    }

    /// Every job hash in one round trip (a key of another type fails the pipeline: then one
    /// by one). `Err` holds the key's type (`none`: no key).
    fn read_hashes(&self, ids: &[String]) -> Vec<HashOrKind> {
        // Only the fields a job needs (parsing replies is the runner's main cost here).
        const FIELDS: [&str; 10] = [
            "script",
            "status",
            "timeout",
            "retries",
            "env_vars",
            "created_at",
            "caller_id",
            "context_id",
            "actor_id",
            "reply_queue_name",
        ];
        let keys: Vec<String> = ids.iter().map(|id| self.keys.job(id)).collect();
        let to_hash = |values: Vec<Option<String>>| -> HashMap<String, String> {
            FIELDS
                .iter()
                .zip(values)
                .filter_map(|(field, value)| Some((field.to_string(), value?)))
                .collect()
        };
        let all = self.with_conn("load", |c| {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("HMGET").arg(key).arg(&FIELDS[..]);
            }
            pipe.query::<Vec<Vec<Option<String>>>>(c)
        });
        // No field at all: no key, a key of another type, or a hash without our fields. An
        // error here is not an answer: `Err("")` (the id is given back to the queue).
        let one = |key: &String| -> HashOrKind {
            let kind =
                match self.with_conn("load", |c| redis::cmd("TYPE").arg(key).query::<String>(c)) {
                    Ok(kind) => kind,
                    Err(_) => return Err(String::new()),
                };
            if kind != "hash" {
                return Err(kind);
            }
            self.with_conn("load", |c| {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg(&FIELDS[..])
                    .query::<Vec<Option<String>>>(c)
            })
            .map(to_hash)
            .map_err(|e| e.to_string())
        };
        match all {
            Ok(rows) => keys
                .iter()
                .zip(rows)
                .map(|(key, values)| {
                    let hash = to_hash(values);
                    if hash.is_empty() { one(key) } else { Ok(hash) }
                })
                .collect(),
            Err(_) => keys.iter().map(one).collect(),
        }
    }

    /// Marks taken jobs `started` in the store.
    fn mark_started(&self, jobs: &[Job]) -> Result<(), StoreError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let profile = self.keys.profile;
        let now = iso8601(SystemTime::now());
        let status = status_to_wire(profile, JobStatus::Started);
        let mut pipe = redis::pipe();
        for job in jobs {
            let key = self.keys.job(&job.id);
            if profile == Profile::Hero {
                pipe.hset_multiple(
                    key,
                    &[
                        ("status", status),
                        ("updated_at", &now),
                        ("started_at", &now),
                    ],
                );
            } else {
                pipe.hset_multiple(key, &[("status", status), ("updated_at", &now)]);
            }
            pipe.ignore();
        }
        self.with_conn("mark started", |c| pipe.query::<()>(c))
    }

    fn load(&self, actor: &str, entries: Vec<(String, HashOrKind)>) -> Vec<Job> {
        let profile = self.keys.profile;
        let now = SystemTime::now();
        let mut jobs = Vec::with_capacity(entries.len());
        for (id, hash) in entries {
            match hash {
                Err(kind) if kind.is_empty() => {
                    // Unreadable just now: back to the queue, to be read again later.
                    if let Err(error) = self.release_id(actor, &id) {
                        warn!(job = %id, %error, "could not give back an unreadable job");
                        self.lost_track.store(true, Ordering::SeqCst);
                    }
                }
                Err(kind) if kind == "none" => {
                    self.reject(actor, &id, "no job hash under this id", false)
                }
                Err(kind) => self.reject(
                    actor,
                    &id,
                    &format!("the job key holds a {kind}, not a hash"),
                    false,
                ),
                Ok(hash) => match job_from_fields(profile, &id, actor, &hash) {
                    Err(error) => self.reject(actor, &id, &error.to_string(), true),
                    Ok(job) if job.status.is_final() => {
                        // Already ended (its id was queued twice): not run again.
                        debug!(job = %id, "an ended job was queued again");
                        self.reject(actor, &id, "an ended job was queued again; not run", false);
                    }
                    Ok(mut job) => {
                        job.status = JobStatus::Started;
                        job.started_at = Some(now);
                        jobs.push(job);
                    }
                },
            }
        }
        let mut in_flight = self.in_flight();
        let ids = in_flight.entry(actor.to_string()).or_default();
        for job in &jobs {
            ids.insert(job.id.clone());
        }
        jobs
    }

    /// Gives a job taken but not finished back to its queue (at the end taken next), as if
    /// it had never been taken.
    pub fn release(&self, job: &Job) -> Result<(), StoreError> {
        self.release_id(&job.actor_id, &job.id)
    }

    fn release_id(&self, actor: &str, id: &str) -> Result<(), StoreError> {
        let processing = self.keys.processing(actor, &self.config.runner_id);
        let queue = self.keys.queue(actor);
        let key = self.keys.job(id);
        let status = status_to_wire(self.keys.profile, JobStatus::Dispatched);
        self.with_conn("release", |c| {
            redis::pipe()
                .atomic()
                .hset(&key, "status", status)
                .ignore()
                .lrem(&processing, 1, id)
                .ignore()
                .rpush(&queue, id)
                .ignore()
                .query::<()>(c)
        })?;
        if let Some(ids) = self.in_flight().get_mut(actor) {
            ids.remove(id);
        }
        Ok(())
    }

    /// Finds the job a stop request names and acts on it, in one atomic step: a job held by
    /// another runner gets the stop passed on to that runner's control list; a job still
    /// queued is taken out and ended `error: cancelled` here; a job held by this runner is
    /// left to the caller to cancel ([`StopRoute::Here`]). So a stop reaches its job whichever
    /// runner pops it from the shared stop queue.
    pub fn route_stop(&self, actor: &str, id: &str) -> Result<StopRoute, StoreError> {
        let keys = self.keys;
        let profile = keys.profile;
        let (control_head, control_tail) = around_runner(keys.control(RUNNER));
        let (heartbeat_head, heartbeat_tail) = around_runner(keys.heartbeat(RUNNER));
        let cancelled = Some("cancelled");
        let payload = reply_payload(profile, id, JobStatus::Error, None, cancelled);
        let fields = ending_fields(
            profile,
            JobStatus::Error,
            None,
            cancelled,
            SystemTime::now(),
        );
        let ended = [
            status_to_wire(profile, JobStatus::Error),
            status_to_wire(profile, JobStatus::Finished),
            "finished",
        ];
        let script = redis::Script::new(ROUTE_STOP);
        let found: Vec<String> = self.with_conn("route stop", |c| {
            let mut invocation = script.prepare_invoke();
            invocation
                .key(keys.runners(actor))
                .key(keys.queue(actor))
                .key(keys.job(id))
                .key(keys.processing(actor, &self.config.runner_id))
                .key(keys.reply(id))
                .arg(id)
                .arg(&self.config.runner_id)
                .arg(keys.processing(actor, ""))
                .arg(&control_head)
                .arg(&control_tail)
                .arg(&heartbeat_head)
                .arg(&heartbeat_tail)
                .arg(&payload)
                .arg(self.config.reply_ttl.as_secs().max(1))
                .arg(reply_named_in_hash(profile))
                .arg(ended.len())
                .arg(&ended[..]);
            for (field, value) in &fields {
                invocation.arg(*field).arg(value);
            }
            invocation.invoke(c)
        })?;
        let route = match found.first().map(String::as_str) {
            Some("here") => StopRoute::Here,
            Some("forwarded") => StopRoute::Forwarded {
                runner: found.get(1).cloned().unwrap_or_default(),
            },
            Some("cancelled") => StopRoute::Cancelled {
                dead_runner: found.get(1).cloned(),
            },
            Some("ended") => StopRoute::Ended,
            Some("unknown") => StopRoute::Unknown,
            _ => {
                if let (Some(runner), Some(problem)) = (found.get(1), found.get(2)) {
                    warn!(actor, job = %id, runner, problem, "could not pass a stop on");
                }
                StopRoute::NotFound
            }
        };
        debug!(actor, job = %id, ?route, "stop routed");
        Ok(route)
    }

    /// Pops a job id from the actor's stop queue, waiting up to `wait`.
    pub fn next_stop(&self, actor: &str, wait: Duration) -> Result<Option<String>, StoreError> {
        Ok(self
            .next_command(actor, wait)?
            .and_then(|(kind, id)| (kind == "stop").then_some(id)))
    }

    /// Pops the next entry of the actor's stop queue (`("stop", job id)`) or of this runner's
    /// control list (`("control", command)`), waiting up to `wait`.
    pub fn next_command(
        &self,
        actor: &str,
        wait: Duration,
    ) -> Result<Option<(String, String)>, StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        let stop = self.keys.stop_queue(actor);
        let control = self.keys.control(&self.config.runner_id);
        let secs = wait.as_secs_f64().max(0.01);
        self.with_conn("stop queue", |c| {
            let popped: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&stop)
                .arg(&control)
                .arg(secs)
                .query(c)?;
            Ok(popped.map(|(key, value)| {
                let kind = if key == stop { "stop" } else { "control" };
                (kind.to_string(), value)
            }))
        })
    }
}

impl RedisStore {
    /// Writes the results of `jobs` (fields, reply, processing list) in one round trip.
    fn write_results(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let profile = self.keys.profile;
        let reply_ttl = self.config.reply_ttl.as_secs().max(1) as i64;
        let replies: Vec<String> = match profile {
            Profile::Hero => jobs.iter().map(|job| self.keys.reply(&job.id)).collect(),
            Profile::Rhailib => {
                let named: Vec<Option<String>> = self.with_conn("complete", |c| {
                    let mut pipe = redis::pipe();
                    for job in jobs {
                        pipe.hget(self.keys.job(&job.id), "reply_queue_name");
                    }
                    pipe.query(c)
                })?;
                jobs.iter()
                    .zip(named)
                    .map(|(job, name)| name.unwrap_or_else(|| self.keys.reply(&job.id)))
                    .collect()
            }
        };
        // One pipeline, not one transaction: a crash between a job's result and its removal
        // from the processing list only requeues an ended job, which is then not run again.
        let mut pipe = redis::pipe();
        for (job, reply) in jobs.iter().zip(&replies) {
            let payload = reply_payload(
                profile,
                &job.id,
                job.status,
                job.output.as_deref(),
                job.error.as_deref(),
            );
            let processing = self.keys.processing(&job.actor_id, &self.config.runner_id);
            pipe.hset_multiple(self.keys.job(&job.id), &result_fields(profile, job))
                .ignore()
                .lpush(reply, payload)
                .ignore()
                .expire(reply, reply_ttl)
                .ignore()
                // The oldest ids are at the tail: search from there.
                .lrem(processing, -1, &job.id)
                .ignore();
        }
        self.with_conn("complete", |c| pipe.query::<()>(c))?;
        let mut in_flight = self.in_flight();
        for job in jobs {
            if let Some(ids) = in_flight.get_mut(&job.actor_id) {
                ids.remove(&job.id);
            }
        }
        Ok(())
    }

    /// As the writer (`writing` set by the caller): writes the pending results, up to
    /// `groups` round trips, then lets go. A failed group goes back to the pending results, to
    /// be tried again by the next writer (the next completion, or `flush`).
    fn write_pending(&self, groups: usize) -> Result<(), StoreError> {
        /// Lets go of the writer's role even if writing panics.
        struct Release<'a>(&'a RedisStore);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0
                    .writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .writing = false;
                self.0.written.notify_all();
            }
        }
        let _release = Release(self);
        let mut result = Ok(());
        for _ in 0..groups {
            let group = std::mem::take(
                &mut self
                    .writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending,
            );
            if group.is_empty() {
                break;
            }
            if let Err(error) = self.write_results(&group) {
                warn!(jobs = group.len(), %error, "could not record job results; will retry");
                self.writes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pending
                    .extend(group);
                result = Err(error);
                break;
            }
        }
        result
    }

    /// Waits until every result handed to `complete` is written (writing them itself if no
    /// one is). Gives up after a few failed attempts while Redis refuses them.
    pub fn flush(&self) {
        let mut failures = 0;
        loop {
            let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
            while writes.writing {
                writes = self
                    .written
                    .wait(writes)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if writes.pending.is_empty() {
                return;
            }
            writes.writing = true;
            drop(writes);
            if self.write_pending(usize::MAX).is_err() {
                failures += 1;
                if failures >= 3 {
                    warn!(
                        "results still unwritten after flushing; their jobs stay in the processing list"
                    );
                    return;
                }
            }
        }
    }
}

/// A stand-in runner id, to split a key built for one ([`around_runner`]).
const RUNNER: &str = "\u{0}runner\u{0}";

/// A runner's key (built for [`RUNNER`]) as the parts before and after the runner id: the Lua
/// scripts build the keys of every runner from them, as `keys.rs` spells them.
fn around_runner(key: String) -> (String, String) {
    let (head, tail) = key.split_once(RUNNER).expect("the key holds the runner id");
    (head.to_string(), tail.to_string())
}

/// `1` where the job's hash names its reply list (`reply_queue_name`, rhailib), for the Lua
/// scripts.
fn reply_named_in_hash(profile: Profile) -> &'static str {
    match profile {
        Profile::Rhailib => "1",
        Profile::Hero => "0",
    }
}

/// What a job's reply list gets when it ends: the status (Hero), or the task as JSON (rhailib).
fn reply_payload(
    profile: Profile,
    id: &str,
    status: JobStatus,
    output: Option<&str>,
    error: Option<&str>,
) -> String {
    let status = status_to_wire(profile, status);
    match profile {
        Profile::Hero => status.to_string(),
        Profile::Rhailib => serde_json::json!({
            "task_id": id,
            "status": status,
            "output": output,
            "error": error,
        })
        .to_string(),
    }
}

fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

impl JobStore for RedisStore {
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        let key = self.keys.job(&job.id);
        let fields = job_to_fields(self.keys.profile, &job);
        let queue = self.keys.queue(&job.actor_id);
        let field = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| *field == name)
                .map(|(_, value)| value.clone())
        };
        let ours = (field("created_at"), field("script"));
        // A write whose reply was lost is retried: the hash is then there, and ours.
        let mut sent = false;
        let created: bool = self.with_conn("submit", |c| {
            let (exists,): (bool,) = redis::pipe().atomic().cmd("EXISTS").arg(&key).query(c)?;
            if exists {
                if !sent {
                    return Ok(false);
                }
                let theirs: (Option<String>, Option<String>) = redis::cmd("HMGET")
                    .arg(&key)
                    .arg("created_at")
                    .arg("script")
                    .query(c)?;
                return Ok(theirs == ours);
            }
            sent = true;
            redis::pipe()
                .atomic()
                .hset_multiple(&key, &fields)
                .ignore()
                .lpush(&queue, &job.id)
                .ignore()
                .query::<()>(c)?;
            Ok(true)
        })?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Duplicate(job.id))
        }
    }

    fn take(&self, actor_id: &str, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        let stopped = || self.taking_stopped.load(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) || max == 0 {
            return Ok(Vec::new());
        }
        if stopped() {
            // Not a busy loop for a dispatcher that has not yet begun its drain.
            std::thread::sleep(wait.min(Duration::from_millis(100)));
            return Ok(Vec::new());
        }
        // Takes are one at a time (the pool's dispatcher makes them), so every id in the
        // processing list that is not in flight was lost by an earlier take.
        if self.lost_track.swap(false, Ordering::SeqCst)
            && let Err(error) = self.recover_own(actor_id, stopped)
        {
            self.lost_track.store(true, Ordering::SeqCst);
            return Err(error);
        }
        let queue = self.keys.queue(actor_id);
        let processing = self.keys.processing(actor_id, &self.config.runner_id);
        let secs = wait.as_secs_f64().max(0.01);
        let first = self.moving(stopped, |c| {
            redis::cmd("BLMOVE")
                .arg(&queue)
                .arg(&processing)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(secs)
                .query::<Option<String>>(c)
        });
        let first = match first? {
            Some(id) => id,
            None => return Ok(Vec::new()),
        };
        let mut ids = vec![first];
        if max > 1 {
            let more: Result<Vec<Option<String>>, StoreError> = self.moving(stopped, |c| {
                let mut pipe = redis::pipe();
                for _ in 1..max {
                    pipe.cmd("LMOVE")
                        .arg(&queue)
                        .arg(&processing)
                        .arg("RIGHT")
                        .arg("LEFT");
                }
                pipe.query(c)
            });
            // On an error, run with the one id known (the rest is given back next time).
            ids.extend(more.unwrap_or_default().into_iter().flatten());
        }
        let entries = self.read_hashes(&ids);
        let jobs = self.load(actor_id, ids.into_iter().zip(entries).collect());
        if let Err(error) = self.mark_started(&jobs) {
            // They are taken (in the processing list): run them all the same.
            warn!(%error, jobs = jobs.len(), "could not mark jobs started");
        }
        Ok(jobs)
    }

    fn complete(&self, job: &Job) -> Result<(), StoreError> {
        // Group commit: the first completer writes every result queued meanwhile in one round
        // trip; the others return at once. Until written, a result is not lost: its id is in
        // the processing list, and a dead runner's ids are requeued.
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.pending.push(job.clone());
        if writes.writing {
            return Ok(());
        }
        writes.writing = true;
        drop(writes);
        // Until nothing is pending: a writer that stopped earlier could leave the last results
        // of a run unwritten, with no later completion to write them.
        self.write_pending(usize::MAX)
    }

    fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        let key = self.keys.job(id);
        let hash: HashMap<String, String> = self.with_conn("get", |c| c.hgetall(&key))?;
        if hash.is_empty() {
            return Ok(None);
        }
        let actor = hash.get("actor_id").cloned().unwrap_or_default();
        let mut job = job_from_fields(self.keys.profile, id, &actor, &hash)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        job.started_at = hash
            .get("started_at")
            .and_then(|t| super::wire::parse_time(t));
        job.finished_at = hash
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
        self.closed.store(true, Ordering::Relaxed);
    }

    fn queued(&self, actor_id: &str) -> Result<usize, StoreError> {
        let queue = self.keys.queue(actor_id);
        self.with_conn("queued", |c| c.llen(&queue))
    }

    fn release(&self, job: &Job) -> Result<(), StoreError> {
        RedisStore::release(self, job)
    }

    fn recover(&self, actor_id: &str) -> Result<usize, StoreError> {
        // Whatever an earlier pool of this runner held is either finished (its result is in
        // the writer: flushed first) or abandoned.
        self.flush();
        self.in_flight().remove(actor_id);
        let processing = self.keys.processing(actor_id, &self.config.runner_id);
        let queue = self.keys.queue(actor_id);
        let mut moved = 0;
        while self
            .with_conn("recover", |c| {
                redis::cmd("LMOVE")
                    .arg(&processing)
                    .arg(&queue)
                    // Newest first to the taking end: the oldest is taken next.
                    .arg("LEFT")
                    .arg("RIGHT")
                    .query::<Option<String>>(c)
            })?
            .is_some()
        {
            moved += 1;
        }
        Ok(moved)
    }
}
