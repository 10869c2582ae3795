//! Writing results: group commit. The first completer writes every result queued meanwhile
//! in one pipeline (per job: its fields, its reply with its time to live, its id out of the
//! processing list); the others return at once. Until written, a result is not lost: its id
//! is in the processing list, and a dead runner's ids are requeued. A group that fails goes
//! back to the pending results, to be tried again.

use std::sync::PoisonError;
use std::time::SystemTime;

use tracing::warn;

use super::connection::reply;
use super::keys::Profile;
use super::store::{RedisStore, reply_payload};
use super::wire::result_fields;
use crate::jobs::{Job, StoreError};

impl RedisStore {
    pub(super) fn complete_job(&self, job: &Job) -> Result<(), StoreError> {
        let mut job = job.clone();
        // Its time is fixed here, whatever retries follow.
        job.finished_at.get_or_insert_with(SystemTime::now);
        let mut writes = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        writes.pending.push(job);
        if writes.writing {
            return Ok(());
        }
        writes.writing = true;
        drop(writes);
        // Until nothing is pending: a writer that stopped earlier could leave the last results
        // of a run unwritten, with no later completion to write them.
        self.write_pending(usize::MAX)
    }

    /// Where each job's reply goes: its default reply list, or (rhailib) the list its hash
    /// names.
    fn reply_keys(&self, jobs: &[Job]) -> Result<Vec<Vec<u8>>, StoreError> {
        let default = |job: &Job| self.keys.reply(&job.id).into_bytes();
        if self.keys.profile == Profile::Hero {
            return Ok(jobs.iter().map(default).collect());
        }
        let mut pipe = redis::pipe();
        for job in jobs {
            pipe.cmd("HGET")
                .arg(self.keys.job(&job.id))
                .arg("reply_queue_name");
        }
        let named = self.run("complete", |c| c.pipeline(&pipe))?;
        Ok(jobs
            .iter()
            .zip(named)
            .map(|(job, named)| match named.map(reply::bytes) {
                Ok(Ok(Some(name))) if !name.is_empty() => name,
                _ => default(job),
            })
            .collect())
    }

    /// Writes the results of `jobs` (fields, reply, processing list) in one round trip.
    fn write_results(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let profile = self.keys.profile;
        let ttl = self.config.reply_ttl.as_secs().max(1) as i64;
        let replies = self.reply_keys(jobs)?;
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
            pipe.hset_multiple(self.keys.job(&job.id), &result_fields(profile, job))
                .lpush(reply.as_slice(), payload)
                .expire(reply.as_slice(), ttl)
                // The oldest ids are at the tail: search from there.
                .lrem(
                    self.keys.processing(&job.actor_id, &self.config.runner_id),
                    -1,
                    &job.id,
                );
        }
        let results = self.run("complete", |c| c.pipeline(&pipe))?;
        if let Some(Err(error)) = results.into_iter().find(Result::is_err) {
            return Err(StoreError::Backend(format!("complete: {error}")));
        }
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
