//! Stops: a stop request goes to the actor's shared stop queue; whichever runner pops it finds
//! the job and acts on it in one atomic step (`lua/route_stop.lua`), passing it on to the
//! runner that holds the job through that runner's control list.

use std::time::{Duration, SystemTime};

use tracing::{debug, warn};

use super::connection::{MAX_BLOCK, reply};
use super::keys::{RUNNER, around_runner};
use super::store::{RedisStore, scripts};
use super::wire::{ending_fields, reply_named_in_hash, reply_payload, status_to_wire};
use crate::jobs::{JobStatus, StoreError};

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

impl RedisStore {
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
        let mut call = scripts().route_stop.call(7);
        call.arg(keys.runners(actor))
            .arg(keys.queue(actor))
            .arg(keys.job(id))
            .arg(keys.processing(actor, &self.config.runner_id))
            .arg(keys.reply(id))
            .arg(keys.queue_of(actor, crate::jobs::Priority::High))
            .arg(keys.queue_of(actor, crate::jobs::Priority::Low))
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
            .arg(self.config.keep_secs(JobStatus::Error))
            .arg(ended.len())
            .arg(&ended[..]);
        for (field, value) in &fields {
            call.arg(*field).arg(value);
        }
        call.arg(self.settle_config());
        let found = self.run("route stop", |c| {
            c.eval_one(&scripts().route_stop, call.clone())
        })?;
        let found: Vec<String> = reply::items(found)
            .unwrap_or_default()
            .into_iter()
            .map(reply::lossy)
            .collect();
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
                if let Some(problem) = found.get(2) {
                    warn!(actor, job = %id, runner = found[1], problem, "could not pass a stop on");
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
    /// control list (`("control", command)`), waiting up to `wait` (at most a second). An
    /// entry that is not UTF-8 is logged and dropped.
    pub fn next_command(
        &self,
        actor: &str,
        wait: Duration,
    ) -> Result<Option<(String, String)>, StoreError> {
        if self.conns.is_closed() {
            return Err(StoreError::Closed);
        }
        let stop = self.keys.stop_queue(actor);
        let control = self.keys.control(&self.config.runner_id);
        let wait = wait.clamp(Duration::from_millis(10), MAX_BLOCK);
        let mut blpop = redis::cmd("BLPOP");
        blpop.arg(&stop).arg(&control).arg(wait.as_secs_f64());
        let popped = self.run("stop queue", |c| c.query_blocking(&blpop, wait))?;
        let mut popped = reply::items(popped).unwrap_or_default().into_iter();
        let (Some(key), Some(value)) = (popped.next(), popped.next()) else {
            return Ok(None);
        };
        let kind = if reply::lossy(key) == stop {
            "stop"
        } else {
            "control"
        };
        match reply::bytes(value) {
            Ok(Some(bytes)) => match String::from_utf8(bytes) {
                Ok(text) => Ok(Some((kind.to_string(), text))),
                Err(error) => {
                    let entry = error.into_bytes().escape_ascii().to_string();
                    warn!(actor, kind, entry, "dropped an entry that is not UTF-8");
                    Ok(None)
                }
            },
            _ => Ok(None),
        }
    }
}
