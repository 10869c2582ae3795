//! Writing results: group commit, each command's reply read on its own, so one job's failure
//! is its own.
//!
//! - The first completer writes every result queued meanwhile in one pipeline; the others
//!   return at once. Until written, a result is not lost: its id is in the processing list,
//!   and a dead runner's ids are requeued.
//! - Per job the pipeline sets its fields, pushes its reply (with its time to live), and
//!   removes its id from the processing list, last: so an id no longer listed is a job whose
//!   writes all ran.
//! - A job whose result Redis refuses (its reply key holds another type, Redis is at its
//!   maxmemory) ends `error` instead, with `could not record the result: <why>`
//!   (`lua/fallback.lua`). A job whose hash key holds another type cannot record anything:
//!   its reply is pushed as it ended, and it leaves the processing list, logged.
//! - A group whose request makes Redis drop the connection each time (a result over
//!   `proto-max-bulk-len`) is written one job at a time; the job at fault ends `error` with
//!   a small result instead, or, if not even that can be written, is logged and dropped from
//!   the processing list.
//! - A group is never written twice: before it is sent again (after a lost connection) or
//!   split, the jobs whose ids left the processing list are left out. A connection lost
//!   between a job's reply and the removal of its id can still push that reply twice; a job
//!   taken back by a reaper or a stop meanwhile is not written then.

use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use redis::{RedisResult, Value};
use tracing::warn;

use super::connection::{Failure, Link, describe, reply};
use super::store::{MAX_DEAD_JOBS, MAX_FIELD_BYTES, RedisStore, scripts};
use super::wire::{iso8601, result_fields, started_fields, status_to_wire};
use super::wire::{reply_list_in_hash, reply_payload};
use crate::jobs::{Job, JobStatus, MAX_ERRORS_KEPT, StoreError};

/// A write waiting to be done: a job's start or its result.
pub(super) struct Ended {
    job: Job,
    /// Sent before, in a write that failed: it may be written already.
    tried: bool,
    /// A start (status `started`, `started_at`, `attempts`), not a result.
    start: bool,
}

impl RedisStore {
    pub(super) fn complete_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut job = job.clone();
        // Its time is fixed here, whatever retries follow.
        job.finished_at.get_or_insert_with(SystemTime::now);
        self.queue_write(Ended {
            job,
            tried: false,
            start: false,
        })
    }

    /// Records that a worker starts `job`, with the results and other starts pending (group
    /// commit): written at once if no write is under way, else by the writer that is.
    pub(super) fn start_job(&self, job: &Job) -> Result<(), StoreError> {
        self.queue_write(Ended {
            job: job.clone(),
            tried: false,
            start: true,
        })
    }

    fn queue_write(&self, write: Ended) -> Result<(), StoreError> {
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        if !write.start {
            // Its start not written yet: the result writes the start's fields too (one
            // command less per job when jobs end faster than their starts are written).
            // Searched from the end: a start is queued shortly before its job ends.
            if let Some(at) = writes
                .pending
                .iter()
                .rposition(|w| w.start && !w.tried && w.job.id == write.job.id)
            {
                writes.pending.remove(at);
            }
        }
        writes.pending.push(write);
        if writes.writing {
            return Ok(());
        }
        writes.writing = true;
        drop(writes);
        // Until nothing is pending: a writer that stopped earlier could leave the last results
        // of a run unwritten, with no later completion to write them.
        self.write_pending(usize::MAX)
    }

    /// Puts a job whose run failed, with retries left, back to wait `delay` for its next run
    /// (`lua/retry.lua`): its failed run joins `errors`, its status is `dispatched` again,
    /// and its id leaves the processing list for the delayed set.
    pub(super) fn retry_job(
        &self,
        job: &Job,
        delay: std::time::Duration,
    ) -> Result<(), StoreError> {
        // Its start first, if still pending: the retry must not be overwritten by it.
        self.flush();
        let profile = self.keys.profile;
        let now = SystemTime::now();
        let error = job.error.clone().unwrap_or_default();
        let mut call = scripts().retry.call(4);
        call.arg(self.keys.job(&job.id))
            .arg(self.keys.delayed(&job.actor_id))
            .arg(self.keys.processing(&job.actor_id, &self.config.runner_id))
            .arg(self.keys.queue(&job.actor_id))
            .arg(&job.id)
            .arg(status_to_wire(profile, JobStatus::Dispatched))
            .arg(&error)
            .arg(job.attempts)
            .arg(iso8601(job.finished_at.unwrap_or(now)))
            .arg(delay.as_millis().min(u64::MAX as u128) as u64)
            .arg(MAX_ERRORS_KEPT)
            .arg(iso8601(now.checked_add(delay).unwrap_or(now)));
        let outcome = self.run("retry", |c| c.eval_one(&scripts().retry, call.clone()));
        self.forget(job);
        outcome.map(|_| ())
    }

    /// Where each job's reply goes: its default reply list, or (rhailib) the list its hash
    /// names.
    fn reply_keys(&self, jobs: &[&Job]) -> Result<Vec<Vec<u8>>, StoreError> {
        let default = |job: &Job| self.keys.reply(&job.id).into_bytes();
        if !reply_list_in_hash(self.keys.profile) {
            return Ok(jobs.iter().map(|job| default(job)).collect());
        }
        // Read within a field's limit: a name a client made huge is not read.
        let mut call = scripts().read.call(jobs.len());
        for job in jobs {
            call.arg(self.keys.job(&job.id));
        }
        call.arg(1).arg("reply_queue_name").arg(MAX_FIELD_BYTES);
        let named = self.run("complete", |c| c.eval_one(&scripts().read, call.clone()))?;
        let mut named = reply::items(named).unwrap_or_default().into_iter();
        Ok(jobs
            .iter()
            .map(|job| {
                let name = match named.next().map(reply::items) {
                    Some(Ok(mut items)) if items.len() == 1 => reply::bytes(items.remove(0)),
                    _ => Ok(None),
                };
                match name {
                    Ok(Some(name)) if !name.is_empty() => name,
                    _ => default(job),
                }
            })
            .collect())
    }

    /// Which of `jobs` still have their id in the processing list (an id whose list is no
    /// list counts as listed).
    fn still_listed(&self, c: &mut Link<'_>, jobs: &[&Job]) -> RedisResult<Vec<bool>> {
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("LPOS")
                .arg(self.keys.processing(&job.actor_id, &self.config.runner_id))
                .arg(&job.id)
                .arg("RANK")
                .arg(-1);
        }
        Ok(c.pipeline(&pipe)?
            .into_iter()
            .map(|found| !matches!(found, Ok(Value::Nil)))
            .collect())
    }

    /// Writes the results of `group`. `Err` only if Redis could not be reached: the caller
    /// tries the group again later.
    fn write_results(&self, group: &[Ended]) -> Result<(), StoreError> {
        let profile = self.keys.profile;
        let ttl = self.config.reply_ttl.as_secs().max(1);
        let mut jobs: Vec<&Job> = group.iter().map(|ended| &ended.job).collect();
        let mut starts: Vec<bool> = group.iter().map(|ended| ended.start).collect();
        let mut replies = self.reply_keys(&jobs)?;
        // Jobs sent before may be written: checked first (on each later attempt, all are).
        let mut check: Vec<bool> = group.iter().map(|ended| ended.tried).collect();
        let mut written = Vec::new();
        let results = self.try_run("complete", |c| {
            if check.iter().any(|&check| check) {
                let listed = self.still_listed(c, &jobs)?;
                let keep: Vec<bool> = check
                    .iter()
                    .zip(listed)
                    .map(|(&check, listed)| !check || listed)
                    .collect();
                // Written already (their reply lost with the connection): their dependents
                // may not have been settled yet (settling twice is harmless).
                for ((job, &start), &kept) in jobs.iter().zip(&starts).zip(&keep) {
                    if !kept && !start && job.status.is_final() {
                        written.push((job.id.clone(), job.status == JobStatus::Finished));
                    }
                }
                let (mut a, mut b, mut d) = (keep.iter(), keep.iter(), keep.iter());
                jobs.retain(|_| *a.next().unwrap_or(&true));
                replies.retain(|_| *b.next().unwrap_or(&true));
                starts.retain(|_| *d.next().unwrap_or(&true));
            }
            check = vec![true; jobs.len()];
            if !self.dead_loaded.load(Ordering::Relaxed)
                && jobs.iter().any(|job| job.status == JobStatus::Error)
            {
                // The pipeline calls it by its hash: loaded first.
                c.query(&scripts().dead.load())?;
                self.dead_loaded.store(true, Ordering::Relaxed);
            }
            let mut pipe = redis::pipe();
            for ((job, reply), &start) in jobs.iter().zip(&replies).zip(&starts) {
                if start {
                    let started_at = iso8601(job.started_at.unwrap_or_else(SystemTime::now));
                    pipe.hset_multiple(
                        self.keys.job(&job.id),
                        &started_fields(profile, &started_at, job.attempts),
                    );
                    continue;
                }
                let payload = reply_payload(
                    profile,
                    &job.id,
                    job.status,
                    job.output.as_deref(),
                    job.error.as_deref(),
                );
                let key = self.keys.job(&job.id);
                pipe.hset_multiple(&key, &result_fields(profile, job))
                    .expire(&key, self.config.keep_secs(job.status) as i64)
                    // After its status: a job that starts waiting on it later sees it ended;
                    // one that waited before is listed here, and released below.
                    .hget(&key, "dependents");
                if job.status == JobStatus::Error {
                    // Listed dead before its reply is pushed, so a client woken by the reply
                    // reads every failed run in `errors`.
                    pipe.add_command(self.dead_call(job));
                }
                pipe.lpush(reply.as_slice(), payload)
                    .expire(reply.as_slice(), ttl as i64)
                    // The oldest ids are at the tail: search from there.
                    .lrem(
                        self.keys.processing(&job.actor_id, &self.config.runner_id),
                        -1,
                        &job.id,
                    );
            }
            c.pipeline(&pipe)
        });
        self.release_dependents(&written);
        match results {
            Ok(results) => {
                let mut results = results.into_iter();
                let mut dead = Vec::new();
                let mut settle = Vec::new();
                for ((job, reply), &start) in jobs.iter().zip(&replies).zip(&starts) {
                    let mut next = || results.next().unwrap_or(Ok(Value::Nil));
                    if start {
                        if let Err(error) = next() {
                            warn!(job = %job.id, %error, "could not record a job's start; it runs all the same");
                        }
                        continue;
                    }
                    let (fields, _, dependents) = (next(), next(), next());
                    if let Ok(Value::BulkString(list)) = dependents
                        && list.iter().any(|b| !matches!(b, b'[' | b']' | b' '))
                    {
                        settle.push((job.id.clone(), job.status == JobStatus::Finished));
                    }
                    if job.status == JobStatus::Error && next().is_err() && fields.is_ok() {
                        // The script was not loaded (Redis restarted): again, loading it.
                        self.dead_loaded.store(false, Ordering::Relaxed);
                        dead.push(*job);
                    }
                    let (pushed, _, removed) = (next(), next(), next());
                    self.recorded(job, reply, fields, pushed, removed)?;
                }
                self.list_dead(&dead);
                self.release_dependents(&settle);
                Ok(())
            }
            Err(Failure::Closed) => Err(StoreError::Closed),
            Err(Failure::Rejected(error) | Failure::Poisoned(error)) if jobs.len() > 1 => {
                // One of them is at fault: each alone (those written already are found so).
                warn!(jobs = jobs.len(), %error, "a group of results could not be written; writing them one at a time");
                for (job, start) in jobs.into_iter().zip(starts) {
                    let alone = Ended {
                        job: job.clone(),
                        tried: true,
                        start,
                    };
                    self.write_results(std::slice::from_ref(&alone))?;
                }
                Ok(())
            }
            Err(Failure::Rejected(error) | Failure::Poisoned(error)) if starts[0] => {
                warn!(job = %jobs[0].id, %error, "could not record a job's start; it runs all the same");
                Ok(())
            }
            Err(Failure::Rejected(error)) => {
                let size = job_size(jobs[0]);
                let why = format!(
                    "Redis closed the connection on each attempt to write it ({size} bytes; \
                     over its proto-max-bulk-len or client-query-buffer-limit?): {error}"
                );
                self.unrecordable(jobs[0], &replies[0], &why)
            }
            Err(Failure::Poisoned(error)) => {
                self.unrecordable(jobs[0], &replies[0], &format!("unreadable reply: {error}"))
            }
            Err(failure) => Err(failure.store_error("complete")),
        }
    }

    /// Acts on the replies to a job's writes: its fields, its reply, its removal from the
    /// processing list.
    fn recorded(
        &self,
        job: &Job,
        reply: &[u8],
        fields: RedisResult<Value>,
        pushed: RedisResult<Value>,
        removed: RedisResult<Value>,
    ) -> Result<(), StoreError> {
        if let Err(error) = removed {
            warn!(job = %job.id, %error, "could not remove a job from the processing list");
        }
        match (fields, pushed) {
            (Ok(_), Ok(_)) => {}
            (Err(error), Ok(_)) => {
                // Its key holds another type: nothing can be recorded there.
                warn!(job = %job.id, %error, "could not record a job's result in its hash; its reply was pushed");
            }
            (Err(error), Err(_)) | (Ok(_), Err(error)) => {
                return self.unrecordable(job, reply, &describe(&error));
            }
        }
        self.forget(job);
        Ok(())
    }

    /// Ends `job` with a small error result, `could not record the result: {why}`, and pushes
    /// the error as its reply if its reply list takes it; its id leaves the processing list.
    fn unrecordable(&self, job: &Job, reply: &[u8], why: &str) -> Result<(), StoreError> {
        let profile = self.keys.profile;
        let message = format!("could not record the result: {why}");
        let at = iso8601(job.finished_at.unwrap_or_else(SystemTime::now));
        let payload = reply_payload(profile, &job.id, JobStatus::Error, None, Some(&message));
        let mut call = scripts().fallback.call(3);
        call.arg(self.keys.job(&job.id))
            .arg(reply)
            .arg(self.keys.processing(&job.actor_id, &self.config.runner_id))
            .arg(&job.id)
            .arg(&at)
            .arg(self.config.reply_ttl.as_secs().max(1))
            // The reply list is given: the one the hash names was read already.
            .arg("0")
            .arg(status_to_wire(profile, JobStatus::Error))
            .arg(&message)
            .arg(&payload)
            .arg("1")
            .arg(self.config.keep_secs(JobStatus::Error))
            .arg(self.settle_config());
        let outcome = self.try_run("complete", |c| {
            c.eval_one(&scripts().fallback, call.clone())
        });
        match outcome {
            Ok(value) => {
                let refused = reply::items(value)
                    .ok()
                    .and_then(|items| items.into_iter().next())
                    .map(reply::lossy)
                    .unwrap_or_default();
                if refused.is_empty() {
                    warn!(job = %job.id, problem = why, "could not record a job's result; it ended `error` instead");
                } else {
                    warn!(job = %job.id, problem = why, then = refused, "could not record a job's result, nor an error in its place; dropped from the processing list");
                }
            }
            Err(Failure::Closed) => return Err(StoreError::Closed),
            Err(failure) => {
                let error = failure.store_error("complete");
                warn!(job = %job.id, problem = why, %error, "could not record a job's result, nor an error in its place");
            }
        }
        self.forget(job);
        Ok(())
    }

    /// Lists jobs that ended `error` after running in their actors' dead sets, their last
    /// failed run added to `errors` (`lua/dead.lua`). A failure is logged: the results are
    /// written already.
    fn list_dead(&self, jobs: &[&Job]) {
        if jobs.is_empty() {
            return;
        }
        let calls: Vec<_> = jobs.iter().map(|job| self.dead_call(job)).collect();
        match self.try_run("dead", |c| c.eval(&scripts().dead, &calls)) {
            Ok(replies) => {
                for (job, reply) in jobs.iter().zip(replies) {
                    if let Err(error) = reply {
                        warn!(job = %job.id, %error, "could not list a failed job as dead");
                    }
                }
            }
            Err(failure) => {
                let error = failure.store_error("dead");
                warn!(jobs = jobs.len(), %error, "could not list failed jobs as dead");
            }
        }
    }

    /// The call of `lua/dead.lua` for `job`, which ended in error.
    fn dead_call(&self, job: &Job) -> redis::Cmd {
        let mut call = scripts().dead.call(2);
        call.arg(self.keys.job(&job.id))
            .arg(self.keys.dead(&job.actor_id))
            .arg(&job.id)
            .arg(job.attempts)
            .arg(iso8601(job.finished_at.unwrap_or_else(SystemTime::now)))
            .arg(job.error.as_deref().unwrap_or_default())
            .arg(MAX_ERRORS_KEPT)
            .arg(MAX_DEAD_JOBS)
            .arg(self.config.keep_secs(JobStatus::Error));
        call
    }

    /// `job` is no longer in flight.
    fn forget(&self, job: &Job) {
        if let Some(ids) = self.in_flight().get_mut(&job.actor_id) {
            ids.remove(&job.id);
        }
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
                    .extend(group.into_iter().map(|ended| Ended {
                        tried: true,
                        ..ended
                    }));
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

/// The bytes a job's result takes in a request (its output twice for Hero, and its error).
fn job_size(job: &Job) -> usize {
    job.output.as_ref().map_or(0, String::len) + job.error.as_ref().map_or(0, String::len)
}
