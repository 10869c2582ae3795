//! Taking jobs: ids moved from the actor's queue into this runner's processing list
//! (`BLMOVE`, then `LMOVE`s), read as bytes, their hashes read as bytes, and whatever cannot
//! run ended `error` or dropped by its bytes, so no id and no hash wedges the take loop.
//!
//! - An id that is no valid job id (not UTF-8, empty, over 256 bytes, with whitespace or
//!   control characters) is logged and dropped from the processing list; a hash under it
//!   ends `error` (`malformed job id: …`) and its reply is pushed.
//! - A field the runner reads that is not UTF-8 ends the job `error`
//!   (`malformed job hash: field `script`: not valid UTF-8`), as any malformed field does.
//! - A field over its limit (`script` and `env_vars`: [`RedisConfig::max_script_bytes`];
//!   the others: [`MAX_FIELD_BYTES`]) is not read: the job ends `error`
//!   (`malformed job hash: field `script`: 2000000 bytes is over the limit of 1048576 bytes`).
//! - An id with no hash, or whose key holds another type, is logged and dropped.
//!
//! [`RedisConfig::max_script_bytes`]: super::RedisConfig::max_script_bytes

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use redis::Value;
use tracing::{debug, warn};

use super::connection::{Failure, reply};
use super::store::{MAX_FIELD_BYTES, RedisStore, job_key, reply_key, scripts};
use super::wire::{
    WireError, iso8601, job_within, read_fields, reply_named_in_hash, reply_payload,
    status_to_wire, text_fields,
};
use crate::jobs::{Job, JobStatus, Priority, StoreError};

/// How often a runner moves due delayed jobs into an actor's queue (and so the longest a
/// blocking take waits before looking again).
const PROMOTE_EVERY: Duration = Duration::from_millis(100);

/// The most delayed jobs one move takes (so no call holds Redis for long).
const PROMOTE_BATCH: usize = 1000;

/// A taken id's hash, as read.
enum HashRead {
    /// The fields the runner reads, as stored (`None`: absent).
    Fields(Vec<Option<Vec<u8>>>),
    /// No hash: the type its key holds instead (`none`: no key).
    Not(String),
    /// Not readable just now: the id goes back to the queue.
    Unreadable,
    /// Not readable at all: the job ends `error` with this.
    Failed(String),
    /// A field over its limit (not read): the job ends `error` naming it.
    Over {
        field: &'static str,
        size: u64,
        limit: usize,
    },
}

/// An id as it is logged: quoted, with anything not printable escaped.
pub(super) fn shown(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("b\"{}\"", id.escape_ascii()),
    }
}

/// The id if it is a valid job id, or why not.
fn check_id(id: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(id).map_err(|_| "not valid UTF-8".to_string())?;
    Job::builder("1")
        .id(text)
        .build()
        .map(|_| text)
        .map_err(|e| e.to_string())
}

impl RedisStore {
    pub(super) fn take_jobs(
        &self,
        actor_id: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        let stopped = || self.taking_stopped.load(Ordering::SeqCst);
        if self.is_closed() || max == 0 {
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
        let order = self.priority_order(actor_id);
        // Whatever is queued, in priority order, at once; else the wait.
        self.promote_due(actor_id);
        let ids = self.take_ordered(&processing, &order, max, stopped)?;
        let ids = if ids.is_empty() {
            self.wait_for_first(actor_id, &queue, &processing, &order, max, wait, stopped)?
        } else {
            ids
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.load_taken(actor_id, ids)
    }

    /// The order the queues of `actor` are taken from this time: of every ten takes, six
    /// start with the high queue, three with the normal one and one with the low one (each
    /// then going on down), so a full queue of a higher priority starves no lower one.
    fn priority_order(&self, actor: &str) -> [String; 3] {
        let turn = self.takes.fetch_add(1, Ordering::Relaxed) % 10;
        let [high, normal, low] =
            [Priority::High, Priority::Normal, Priority::Low].map(|p| self.keys.queue_of(actor, p));
        match turn {
            0..=5 => [high, normal, low],
            6..=8 => [normal, high, low],
            _ => [low, high, normal],
        }
    }

    /// Moves up to `max` ids from the queues, in `order`, into the processing list, in one
    /// script (`lua/take.lua`).
    fn take_ordered(
        &self,
        processing: &str,
        order: &[String; 3],
        max: usize,
        stopped: impl Fn() -> bool,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut call = scripts().take.call(4);
        call.arg(processing).arg(&order[..]).arg(max);
        let moved = self.moving(stopped, |c| c.eval_one(&scripts().take, call.clone()))?;
        Ok(reply::items(moved)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|id| reply::bytes(id).ok().flatten())
            .collect())
    }

    /// Waits up to `wait` for a job of `actor` (blocking on its normal queue, looking at every
    /// queue between slices of 100 ms), then takes up to `max` in all.
    #[allow(clippy::too_many_arguments)]
    fn wait_for_first(
        &self,
        actor_id: &str,
        queue: &str,
        processing: &str,
        order: &[String; 3],
        max: usize,
        wait: Duration,
        stopped: impl Fn() -> bool + Copy,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        // The wait, in slices of 100 ms: a wind-down ends it within one, due delayed jobs are
        // moved into the queues between them, and the other priorities' queues are looked at.
        let until = Instant::now() + wait;
        let first = loop {
            self.promote_due(actor_id);
            let slice = until
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(10), PROMOTE_EVERY);
            let mut blmove = redis::cmd("BLMOVE");
            blmove
                .arg(queue)
                .arg(processing)
                .arg("RIGHT")
                .arg("LEFT")
                .arg(slice.as_secs_f64());
            let moved = self.moving(stopped, |c| c.query_blocking(&blmove, slice))?;
            if let Ok(Some(id)) = reply::bytes(moved) {
                break id;
            }
            if Instant::now() >= until || stopped() {
                return Ok(Vec::new());
            }
            self.promote_due(actor_id);
            let found = self.take_ordered(processing, order, max, stopped)?;
            if !found.is_empty() {
                return Ok(found);
            }
        };
        // The queues were empty a moment ago: this job alone, at once (a burst behind it is
        // taken by the next take, in one script).
        Ok(vec![first])
    }

    /// Checks the taken ids, reads their hashes, and returns the jobs that can run (see
    /// `load`).
    fn load_taken(&self, actor_id: &str, ids: Vec<Vec<u8>>) -> Result<Vec<Job>, StoreError> {
        let mut valid = Vec::with_capacity(ids.len());
        for id in &ids {
            match check_id(id) {
                Ok(id) => valid.push(id.to_string()),
                Err(reason) => {
                    let message = format!("malformed job id: {reason}");
                    self.reject(actor_id, id, &message, true);
                }
            }
        }
        let entries = match self.read_hashes(&valid) {
            Ok(entries) => entries,
            Err(error) => {
                // Not the jobs' fault: the next take gives their ids back to the queue.
                self.lost_track.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        // Not marked `started` here: a worker marks each when it starts it (`start`), so a
        // dead runner's jobs that never started use no retry.
        Ok(self.load(actor_id, valid.into_iter().zip(entries).collect()))
    }

    /// Whether a taken job with prerequisites may run now (`lua/gate.lua`): they have all
    /// finished. If not, it waits (out of the processing list, listed as a dependent of each
    /// prerequisite not finished yet), or, if one is missing or failed, ends `error` naming
    /// it. A gate that cannot be run leaves the job where it is, to be given back to the
    /// queue.
    fn gate(&self, actor: &str, job: &Job) -> bool {
        let profile = self.keys.profile;
        let mut call = scripts().gate.call(2);
        call.arg(self.keys.job(&job.id))
            .arg(self.keys.processing(actor, &self.config.runner_id))
            .arg(&job.id)
            .arg(self.keys.job(""))
            .arg(status_to_wire(profile, JobStatus::Waiting))
            .arg(status_to_wire(profile, JobStatus::Finished))
            .arg("finished")
            .arg(status_to_wire(profile, JobStatus::Error))
            .arg(iso8601(SystemTime::now()))
            .arg(actor)
            .arg(&job.prerequisites);
        let verdict = match self.run("gate", |c| c.eval_one(&scripts().gate, call.clone())) {
            Ok(verdict) => verdict,
            Err(error) => {
                warn!(job = %job.id, %error, "could not check a job's prerequisites; it goes back to the queue");
                self.lost_track.store(true, Ordering::SeqCst);
                return false;
            }
        };
        let verdict: Vec<String> = reply::items(verdict)
            .unwrap_or_default()
            .into_iter()
            .map(reply::lossy)
            .collect();
        match verdict.first().map(String::as_str) {
            Some("run") => true,
            Some("fail") => {
                let message = verdict
                    .get(1)
                    .map_or("a prerequisite failed", String::as_str);
                self.reject(actor, job.id.as_bytes(), message, true);
                false
            }
            Some("wait") => {
                debug!(job = %job.id, waiting_on = verdict.get(1).map_or("", String::as_str), "a job waits for its prerequisites");
                false
            }
            _ => false,
        }
    }

    /// Moves `actor`'s delayed jobs that are due into its queue, at most every
    /// [`PROMOTE_EVERY`] per actor (a failure is logged: the next take tries again).
    fn promote_due(&self, actor: &str) {
        {
            let mut promoted = self.promoted.lock().unwrap_or_else(PoisonError::into_inner);
            if promoted
                .get(actor)
                .is_some_and(|last| last.elapsed() < PROMOTE_EVERY)
            {
                return;
            }
            promoted.insert(actor.to_owned(), Instant::now());
        }
        let mut call = scripts().promote.call(4);
        call.arg(self.keys.delayed(actor))
            .arg(self.keys.queue(actor))
            .arg(self.keys.queue_of(actor, Priority::High))
            .arg(self.keys.queue_of(actor, Priority::Low))
            .arg(PROMOTE_BATCH)
            .arg(self.keys.job(""));
        match self.run("promote", |c| c.eval_one(&scripts().promote, call.clone())) {
            Ok(moved) => {
                let moved = reply::int(moved).unwrap_or(0);
                if moved > 0 {
                    debug!(actor, moved, "delayed jobs due: moved into the queue");
                }
            }
            Err(error) => warn!(actor, %error, "could not move due delayed jobs"),
        }
    }

    /// Puts the ids in this runner's own processing list that it does not know it holds back
    /// in the queue (a take whose reply was lost with the connection).
    fn recover_own(&self, actor: &str, stop: impl Fn() -> bool) -> Result<(), StoreError> {
        let processing = self.keys.processing(actor, &self.config.runner_id);
        // What is in flight first, then the list: ids only join `in_flight` in a take (and
        // takes are one at a time), while results and releases leave the list before they
        // leave `in_flight`. So a listed id not in flight was lost.
        let known = self.in_flight().get(actor).cloned().unwrap_or_default();
        let mut lrange = redis::cmd("LRANGE");
        lrange.arg(&processing).arg(0).arg(-1);
        let listed = self.run_unless("recover", &stop, |c| c.query(&lrange))?;
        let listed = reply::items(listed).unwrap_or_default();
        for id in listed
            .into_iter()
            .filter_map(|v| reply::bytes(v).ok().flatten())
        {
            if std::str::from_utf8(&id).is_ok_and(|id| known.contains(id)) {
                continue;
            }
            if self.requeue(actor, &id, "", &stop)? {
                warn!(actor, job = %shown(&id), "requeued a job this runner had lost track of");
            }
        }
        Ok(())
    }

    /// Runs a take's move of ids into the processing list. A move whose reply is lost with
    /// the connection is retried; the ids moved by the lost attempt are then in the
    /// processing list, unknown: so a retried or failed move sets `lost_track`.
    fn moving<T>(
        &self,
        stop: impl Fn() -> bool,
        mut op: impl FnMut(&mut super::connection::Link<'_>) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut attempts = 0;
        let result = self.run_unless("take", stop, |c| {
            attempts += 1;
            op(c)
        });
        if attempts > 1 || result.is_err() {
            self.lost_track.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Drops `id` (any bytes) from this runner's processing list, logged; with `end`, a hash
    /// under it ends `error` with `message` and its reply is pushed.
    pub(super) fn reject(&self, actor: &str, id: &[u8], message: &str, end: bool) {
        let profile = self.keys.profile;
        warn!(actor, job = %shown(id), message, "malformed job skipped");
        let payload = reply_payload(
            profile,
            &String::from_utf8_lossy(id),
            JobStatus::Error,
            None,
            Some(message),
        );
        let mut call = scripts().reject.call(3);
        call.arg(self.keys.processing(actor, &self.config.runner_id))
            .arg(job_key(self.keys, id))
            .arg(reply_key(self.keys, id))
            .arg(id)
            .arg(if end { "1" } else { "0" })
            .arg(status_to_wire(profile, JobStatus::Error))
            .arg(message)
            .arg(iso8601(SystemTime::now()))
            .arg(&payload)
            .arg(self.config.reply_ttl.as_secs().max(1))
            .arg(reply_named_in_hash(profile))
            .arg(self.config.keep_secs(JobStatus::Error))
            .arg(self.settle_config());
        if let Err(error) = self.run("reject", |c| c.eval_one(&scripts().reject, call.clone())) {
            warn!(job = %shown(id), %error, "could not record a malformed job");
            // Its id may still be listed: the next take gives it back to the queue.
            self.lost_track.store(true, Ordering::SeqCst);
        }
    }

    /// The fields the runner reads of every job hash, in one round trip, each only if it is
    /// within its limit (see `lua/read.lua`).
    ///
    /// `Err` if the script itself fails (Redis refuses it: an ACL without `MEMORY`, a script
    /// killed): that is no job's fault, so no job ends for it.
    fn read_hashes(&self, ids: &[String]) -> Result<Vec<HashRead>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fields = read_fields(self.keys.profile);
        let limits: Vec<usize> = fields.iter().map(|f| self.field_limit(f)).collect();
        let mut call = scripts().read.call(ids.len());
        for id in ids {
            call.arg(self.keys.job(id));
        }
        call.arg(fields.len()).arg(fields).arg(&limits);
        let rows = match self.try_run("load", |c| c.eval_one(&scripts().read, call.clone())) {
            Ok(Value::Array(rows)) => rows,
            Ok(other) => {
                let message = format!("could not read the job hash: unexpected reply {other:?}");
                return Ok(ids
                    .iter()
                    .map(|_| HashRead::Failed(message.clone()))
                    .collect());
            }
            Err(Failure::Rejected(_) | Failure::Poisoned(_)) if ids.len() > 1 => {
                // One of them cannot be read: each alone.
                let mut reads = Vec::with_capacity(ids.len());
                for id in ids {
                    reads.extend(self.read_hashes(std::slice::from_ref(id))?);
                }
                return Ok(reads);
            }
            Err(failure @ (Failure::Rejected(_) | Failure::Poisoned(_))) => {
                let error = failure.store_error("could not read the job hash");
                return Ok(vec![HashRead::Failed(error.to_string())]);
            }
            Err(failure @ (Failure::Server(_) | Failure::Other(_))) => {
                let error = failure.store_error("reading job hashes");
                warn!(%error, "could not read job hashes; their jobs go back to the queue");
                return Err(error);
            }
            Err(Failure::Closed) => return Ok(ids.iter().map(|_| HashRead::Unreadable).collect()),
        };
        let mut reads: Vec<HashRead> = rows
            .into_iter()
            .map(|row| match row {
                Value::Array(values) if values.len() == fields.len() => {
                    let mut read = Vec::with_capacity(values.len());
                    for (i, value) in values.into_iter().enumerate() {
                        match value {
                            Value::Int(size) => {
                                return HashRead::Over {
                                    field: fields[i],
                                    size: u64::try_from(size).unwrap_or(0),
                                    limit: limits[i],
                                };
                            }
                            value => read.push(reply::bytes(value).ok().flatten()),
                        }
                    }
                    HashRead::Fields(read)
                }
                other @ Value::Array(_) => HashRead::Failed(format!(
                    "could not read the job hash: unexpected reply {other:?}"
                )),
                kind => HashRead::Not(reply::lossy(kind)),
            })
            .collect();
        reads.truncate(ids.len());
        reads.resize_with(ids.len(), || HashRead::Unreadable);
        Ok(reads)
    }

    /// The most bytes read of a job hash's `field`.
    fn field_limit(&self, field: &str) -> usize {
        match field {
            "script" | "env_vars" => self.config.max_script_bytes,
            _ => MAX_FIELD_BYTES,
        }
    }

    /// The jobs that can run; the others ended, dropped, or given back to the queue.
    fn load(&self, actor: &str, entries: Vec<(String, HashRead)>) -> Vec<Job> {
        let profile = self.keys.profile;
        let mut jobs = Vec::with_capacity(entries.len());
        for (id, read) in entries {
            let values = match read {
                HashRead::Fields(values) => values,
                HashRead::Unreadable => {
                    // Unreadable just now: back to the queue, to be read again later.
                    if let Err(error) = self.release_id(actor, id.as_bytes()) {
                        warn!(job = %id, %error, "could not give back an unreadable job");
                        self.lost_track.store(true, Ordering::SeqCst);
                    }
                    continue;
                }
                HashRead::Failed(message) => {
                    self.reject(actor, id.as_bytes(), &message, true);
                    continue;
                }
                HashRead::Over { field, size, limit } => {
                    let error = WireError {
                        field,
                        reason: format!("{size} bytes is over the limit of {limit} bytes"),
                    };
                    self.reject(actor, id.as_bytes(), &error.to_string(), true);
                    continue;
                }
                HashRead::Not(kind) if kind == "none" => {
                    self.reject(actor, id.as_bytes(), "no job hash under this id", false);
                    continue;
                }
                HashRead::Not(kind) => {
                    let message = format!("the job key holds a {kind}, not a hash");
                    self.reject(actor, id.as_bytes(), &message, false);
                    continue;
                }
            };
            let parsed =
                text_fields(read_fields(profile).iter().copied().zip(values)).and_then(|hash| {
                    job_within(profile, &id, actor, &hash, self.config.max_script_bytes)
                });
            match parsed {
                Err(error) => self.reject(actor, id.as_bytes(), &error.to_string(), true),
                Ok(job) if job.status.is_final() => {
                    // Already ended (its id was queued twice): not run again.
                    debug!(job = %id, "an ended job was queued again");
                    let message = "an ended job was queued again; not run";
                    self.reject(actor, id.as_bytes(), message, false);
                }
                Ok(job) if !job.prerequisites.is_empty() && !self.gate(actor, &job) => {}
                Ok(mut job) => {
                    // The queue it was taken from decides its actor: its processing list is
                    // that actor's, whatever the hash says.
                    job.actor_id = actor.to_string();
                    job.timeout = job.timeout.min(self.config.max_timeout);
                    jobs.push(job);
                }
            }
        }
        let mut in_flight = self.in_flight();
        let ids = in_flight.entry(actor.to_string()).or_default();
        for job in &jobs {
            ids.insert(job.id.clone());
        }
        jobs
    }
}
