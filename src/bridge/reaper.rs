//! Liveness: every runner refreshes a heartbeat key with a time to live and lists itself in
//! the actor's set of runners; [`RedisStore::reap`] (every runner calls it periodically) gives
//! the jobs of a runner whose heartbeat expired back to the queue (`lua/reap.lua`), in calls
//! of a bounded number of ids.

use std::sync::OnceLock;
use std::sync::PoisonError;
use std::time::{Instant, SystemTime};

use redis::Value;
use tracing::warn;

use super::connection::reply;
use super::keys::{RUNNER, around_runner};
use super::store::{MAX_DEAD_JOBS, RedisStore, scripts};
use super::wire::{iso8601, reply_named_in_hash, status_to_wire};
use crate::jobs::{JobStatus, MAX_ERRORS_KEPT, Priority, StoreError};

impl RedisStore {
    /// Refreshes this runner's heartbeat and its place in the actor's set of runners.
    pub fn heartbeat(&self, actor: &str) -> Result<(), StoreError> {
        let key = self.keys.heartbeat(&self.config.runner_id);
        let runners = self.keys.runners(actor);
        let ttl = self.config.heartbeat_ttl.as_millis().max(1) as u64;
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&key).arg("alive").arg("PX").arg(ttl);
        pipe.cmd("SADD").arg(&runners).arg(&self.config.runner_id);
        // What `baobab runners` shows: refreshed with each beat, gone ten beats after the last.
        let info = self.keys.runner_info(&self.config.runner_id);
        let running = self.in_flight().get(actor).map_or(0, |ids| ids.len());
        let (workers, done, rate) = {
            let load = self.load.lock().unwrap_or_else(PoisonError::into_inner);
            (load.workers, load.done, load.rate)
        };
        pipe.hset_multiple(
            &info,
            &[
                ("actor", actor.to_string()),
                ("host", host().to_string()),
                ("pid", std::process::id().to_string()),
                ("workers", workers.to_string()),
                ("running", running.to_string()),
                ("done", done.to_string()),
                ("rate", format!("{rate:.1}")),
                ("heartbeat_ttl_ms", ttl.to_string()),
                ("started_at", iso8601(self.started_at)),
            ],
        );
        pipe.cmd("PEXPIRE").arg(&info).arg(ttl.saturating_mul(10));
        let replies = self.run("heartbeat", |c| c.pipeline(&pipe))?;
        for reply in replies {
            reply.map_err(|e| StoreError::Backend(format!("heartbeat: {e}")))?;
        }
        Ok(())
    }

    /// Notes this runner's workers and the jobs it has ended so far, for its next heartbeat
    /// to announce (with the rate since the previous report).
    pub fn report_load(&self, workers: u64, done: u64) {
        let mut load = self.load.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some((then, before)) = load.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                load.rate = done.saturating_sub(before) as f64 / secs;
            }
        }
        load.last = Some((now, done));
        load.workers = workers;
        load.done = done;
    }

    /// Takes back the jobs of runners of `actor` whose heartbeat expired: a job no worker had
    /// started goes back to the queue, using no retry; a job that was running has failed a
    /// run, and runs again after its backoff if it has retries left, else ends `error` and is
    /// listed dead. Returns (requeued, failed).
    /// What it cannot take back (a processing list that is no list, a queue that takes no
    /// id) is logged and left as it is; it does not stop the rest.
    pub fn reap(&self, actor: &str) -> Result<(u64, u64), StoreError> {
        let keys = self.keys;
        let (heartbeat_head, heartbeat_tail) = around_runner(keys.heartbeat(RUNNER));
        let mut call = scripts().reap.call(1);
        call.arg(keys.runners(actor))
            .arg(&self.config.runner_id)
            .arg(&heartbeat_head)
            .arg(&heartbeat_tail)
            .arg(keys.processing(actor, ""))
            .arg(keys.queue(actor))
            .arg(keys.job(""))
            .arg(status_to_wire(keys.profile, JobStatus::Error))
            .arg(keys.reply(""))
            .arg(reply_named_in_hash(keys.profile))
            .arg(iso8601(SystemTime::now()))
            .arg(status_to_wire(keys.profile, JobStatus::Finished))
            .arg("finished")
            .arg(REAP_BUDGET)
            .arg(self.config.reply_ttl.as_secs().max(1))
            .arg(self.config.keep_secs(JobStatus::Error))
            .arg(status_to_wire(keys.profile, JobStatus::Started))
            .arg(status_to_wire(keys.profile, JobStatus::Dispatched))
            .arg(keys.delayed(actor))
            .arg(keys.dead(actor))
            .arg(MAX_DEAD_JOBS)
            .arg(MAX_ERRORS_KEPT)
            .arg(self.settle_config())
            .arg(keys.queue_of(actor, Priority::High))
            .arg(keys.queue_of(actor, Priority::Low));
        // Each call takes back a bounded number of ids, so none holds Redis for long; every
        // call that stops at its budget has taken ids out of a dead runner's list for good.
        let mut totals = [0u64; 3];
        loop {
            let round = self
                .run("reap", |c| c.eval_one(&scripts().reap, call.clone()))
                .and_then(|value| {
                    counts(value).map_err(|e| StoreError::Backend(format!("reap: {e}")))
                })?;
            for (total, n) in totals.iter_mut().zip(round) {
                *total += n;
            }
            if round[3] == 0 || self.is_closed() {
                break;
            }
        }
        let [moved, failed, skipped] = totals;
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
}

/// A script's reply of three counts.
fn counts(value: Value) -> redis::RedisResult<[u64; 4]> {
    let items = reply::items(value).map_err(|v| super::connection::unexpected("counts", &v))?;
    let mut counts = [0u64; 4];
    for (count, item) in counts.iter_mut().zip(items) {
        *count = reply::int(item).unwrap_or(0).max(0) as u64;
    }
    Ok(counts)
}

/// The most ids of dead runners one call of the reaper's script looks at.
const REAP_BUDGET: u64 = 1000;

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`, else `unknown`).
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into())
    })
}
