//! The dispatcher's jobs: the queue it holds, their hand-out to workers in batches, takes
//! from the store, and the cancels and endings of jobs (a stop, a shutdown, a pool that gives
//! up).

use std::collections::VecDeque;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::{debug, info, warn};

use crate::jobs::job::{Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::server::ReplyTo;
use crate::{Addr, Ctx, ExitReason, Message};

use super::super::PoolStats;
use super::super::batch::{Abandon, Batch, Cancelled, Ended};
use super::super::worker::WorkerMsg;
use super::{DispatchMsg, Dispatcher, EARLY_CANCELS};

impl Dispatcher {
    /// Jobs taken back before they started: to the front of the queue, in their order.
    pub(super) fn requeue_front(&mut self, jobs: Vec<Job>) {
        for job in jobs.into_iter().rev() {
            self.pending.push_front(job);
        }
    }

    /// While draining nothing more is handed out: what is pending ends now.
    pub(super) fn cancel_pending_if_draining(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.draining && !self.pending.is_empty() {
            let jobs: Vec<Job> = self.pending.drain(..).collect();
            self.cancel_jobs(ctx, jobs, "cancelled");
        }
    }

    pub(super) fn free_slots(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| !w.retiring)
            .map(|w| self.config.concurrency.saturating_sub(w.batches.len()))
            .sum()
    }

    /// With nothing pending and a slot free, takes the back half of the longest waiting
    /// queue of a running batch, so a long job does not hold up the jobs batched behind it
    /// while another worker idles.
    pub(super) fn steal(&mut self) {
        if !self.pending.is_empty() || self.free_slots() == 0 {
            return;
        }
        let longest = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter())
            .map(|b| {
                (
                    b.jobs.lock().unwrap_or_else(PoisonError::into_inner).len(),
                    b,
                )
            })
            .filter(|(waiting, _)| *waiting >= 1)
            .max_by_key(|(waiting, _)| *waiting)
            .map(|(_, b)| Arc::clone(b));
        if let Some(batch) = longest {
            let mut jobs = batch.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let keep = jobs.len() / 2;
            self.pending.extend(jobs.drain(keep..));
        }
    }

    /// Hands pending jobs to workers with free slots, spread evenly.
    pub(super) fn assign(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.draining {
            return;
        }
        self.steal();
        let concurrency = self.config.concurrency.max(1);
        loop {
            let free = self.free_slots();
            if free == 0 || self.pending.is_empty() {
                return;
            }
            let size = (self.pending.len() / free).clamp(1, self.config.max_batch.max(1));
            let Some(worker) = self
                .workers
                .iter_mut()
                .filter(|w| !w.retiring && w.batches.len() < concurrency)
                .min_by_key(|w| w.batches.len())
            else {
                return;
            };
            let jobs: VecDeque<Job> = self.pending.drain(..size).collect();
            let batch = Arc::new(Batch::new(self.next_batch, jobs, Arc::clone(&self.ended)));
            self.next_batch += 1;
            worker.batches.push(Arc::clone(&batch));
            worker.ping = None;
            let to = Addr::<WorkerMsg>::new(worker.pid);
            let _ = ctx.send(&to, WorkerMsg::Work(batch));
        }
    }

    /// Asks the store for more jobs when workers have free slots and nothing is pending, or
    /// when fewer than `prefetch` jobs are pending.
    pub(super) fn take(&mut self, ctx: &Ctx<DispatchMsg>) {
        if self.taking || self.draining || ctx.now() < self.take_after {
            return;
        }
        let batch = self.config.max_batch.max(1);
        let max = if self.pending.len() < self.config.prefetch {
            (self.config.prefetch - self.pending.len()).max(batch)
        } else if self.pending.is_empty() && self.free_slots() > 0 {
            self.free_slots() * batch
        } else {
            return;
        };
        self.taking = true;
        let store = Arc::clone(&self.store);
        let actor_id = self.config.actor_id.clone();
        let wait = self.config.take_wait;
        ctx.spawn_blocking(move || store.take(&actor_id, max, wait), DispatchMsg::Taken);
    }

    /// Ends `jobs` with `error: <why>` (on the blocking pool); on a shutdown of a pool that
    /// requeues, gives them back to the store instead.
    pub(super) fn cancel_jobs(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>, why: &str) {
        if jobs.is_empty() {
            return;
        }
        if !(self.config.requeue_on_shutdown && self.draining) {
            self.end_jobs(ctx, jobs, why);
            return;
        }
        let n = jobs.len() as u64;
        self.completing += n;
        let store = Arc::clone(&self.store);
        ctx.spawn_blocking(
            move || {
                for job in jobs {
                    if let Err(error) = store.release(&job) {
                        warn!(job = %job.id, %error, "could not requeue a job");
                    }
                }
                n
            },
            DispatchMsg::Completed,
        );
    }

    /// Ends `jobs` `error: <why>` in the store (on the blocking pool), even during a drain:
    /// a stopped job is not given back to the queue.
    pub(super) fn end_jobs(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>, why: &str) {
        if jobs.is_empty() {
            return;
        }
        let n = jobs.len() as u64;
        self.completing += n;
        let store = Arc::clone(&self.store);
        let ended = Arc::clone(&self.ended);
        let why = why.to_string();
        ctx.spawn_blocking(
            move || {
                for job in jobs {
                    fail_job(
                        &*store,
                        &ended,
                        job,
                        &why,
                        "could not record a cancelled job",
                    );
                }
                n
            },
            DispatchMsg::Completed,
        );
    }

    /// Cancels every running batch: the running job of each ends `error: <why>`; the jobs not
    /// started are taken back and returned.
    pub(super) fn cancel_running(&mut self, why: &str) -> Vec<Job> {
        let batches: Vec<Arc<Batch>> = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter().cloned())
            .collect();
        let mut back = Vec::new();
        let why = if self.config.requeue_on_shutdown {
            Abandon::Requeue
        } else {
            Abandon::Fail(why.to_string())
        };
        for batch in batches {
            back.extend(batch.take_back());
            batch.abandon(why.clone());
        }
        back
    }

    /// Queues taken jobs, except those cancelled before they arrived: they end
    /// `error: cancelled`. During a drain, none is queued (see [`Self::cancel_jobs`]).
    pub(super) fn add_taken(&mut self, ctx: &Ctx<DispatchMsg>, jobs: Vec<Job>) {
        let (cancelled, jobs): (Vec<Job>, Vec<Job>) = if self.early_cancels.is_empty() {
            (Vec::new(), jobs)
        } else {
            jobs.into_iter().partition(|job| {
                let early = self.early_cancels.iter().position(|id| *id == job.id);
                early.and_then(|i| self.early_cancels.remove(i)).is_some()
            })
        };
        if self.draining {
            self.cancel_jobs(ctx, jobs, "cancelled");
        } else {
            self.pending.extend(jobs);
        }
        for job in &cancelled {
            info!(job = %job.id, "cancelling a job stopped before it arrived");
        }
        self.end_jobs(ctx, cancelled, "cancelled");
    }

    /// Cancels job `id`: a running one is told to stop (it ends `error: cancelled`); one not
    /// started ends so at once. An id not here is remembered (the newest
    /// [`EARLY_CANCELS`]), and the job is cancelled if a take brings it later.
    pub(super) fn cancel_one(&mut self, ctx: &Ctx<DispatchMsg>, id: &str) {
        if let Some(index) = self.pending.iter().position(|j| j.id == id) {
            let job = self.pending.remove(index).expect("index in bounds");
            self.end_jobs(ctx, vec![job], "cancelled");
            return;
        }
        let batches: Vec<Arc<Batch>> = self
            .workers
            .iter()
            .flat_map(|w| w.batches.iter().cloned())
            .collect();
        for batch in batches {
            match batch.cancel(id) {
                Some(Cancelled::Running) => {
                    info!(job = %id, "cancelling a running job");
                    return;
                }
                Some(Cancelled::Waiting(job)) => {
                    self.end_jobs(ctx, vec![*job], "cancelled");
                    return;
                }
                None => {}
            }
        }
        debug!(job = %id, "cancel for a job not here (yet): remembered");
        if !self.early_cancels.iter().any(|early| early == id) {
            if self.early_cancels.len() == EARLY_CANCELS {
                self.early_cancels.pop_front();
            }
            self.early_cancels.push_back(id.to_string());
        }
    }

    /// Why the pool stops when its workers' supervisor has given up (`reason`, its exit).
    pub(super) fn gave_up(&self, reason: &ExitReason) -> String {
        let (restarts, period) = self.config.intensity;
        match &self.last_crash {
            Some(last) => format!(
                "worker pool stopped: its workers crashed more than {restarts} times in \
                 {period:?} (the last: {last})"
            ),
            None => format!("worker pool stopped: its workers' supervisor exited ({reason})"),
        }
    }

    /// Waits (up to `limit`) until the jobs this dispatcher is ending or giving back on the
    /// blocking pool are written.
    pub(super) async fn await_completions(&mut self, ctx: &mut Ctx<DispatchMsg>, limit: Duration) {
        let until = ctx.now() + limit;
        while self.completing > 0 {
            let left = until.saturating_sub(ctx.now());
            match ctx
                .recv_matching_timeout(
                    |m| matches!(m, Message::User(DispatchMsg::Completed(_))),
                    left,
                )
                .await
            {
                Some(Message::User(DispatchMsg::Completed(n))) => self.completing -= n,
                _ => {
                    warn!(actor = %self.config.actor_id, left = self.completing,
                        "jobs not yet written as the pool stops");
                    return;
                }
            }
        }
    }

    /// Ends every job still queued in the store for this pool's actor `error: <why>` (on the
    /// blocking pool; this waits for it). The pool owns its actor's queue in the store.
    pub(super) async fn fail_queued(&mut self, ctx: &mut Ctx<DispatchMsg>, why: &str) {
        let store = Arc::clone(&self.store);
        let ended = Arc::clone(&self.ended);
        let actor = self.config.actor_id.clone();
        let why = why.to_string();
        ctx.blocking(move || {
            let mut failed = 0u64;
            loop {
                let jobs = match store.take(&actor, 1024, Duration::ZERO) {
                    Ok(jobs) if !jobs.is_empty() => jobs,
                    Ok(_) => break,
                    Err(error) => {
                        warn!(%actor, %error, "could not end the jobs still queued");
                        break;
                    }
                };
                for job in jobs {
                    fail_job(&*store, &ended, job, &why, "could not end a queued job");
                    failed += 1;
                }
            }
            if failed > 0 {
                warn!(%actor, failed, "ended the jobs still queued: the pool stopped");
            }
        })
        .await;
    }

    pub(super) fn idle_for_shutdown(&self) -> bool {
        self.draining
            && self.pending.is_empty()
            && self.completing == 0
            && !self.taking
            && self.workers.iter().all(|w| w.batches.is_empty())
            && self.orphans.is_empty()
    }

    pub(super) async fn finish(
        &mut self,
        ctx: &mut Ctx<DispatchMsg>,
        reply: Option<ReplyTo<PoolStats>>,
    ) -> ExitReason {
        let stats = self.current_stats();
        let dynamic = self.dynamic.pid();
        ctx.exit(dynamic, ExitReason::Shutdown);
        let _ = ctx
            .recv_matching(|m| matches!(m, Message::Exit(s) if s.from == dynamic))
            .await;
        info!(actor = %self.config.actor_id, finished = stats.finished, failed = stats.failed,
            "worker pool stopped");
        if let Some(reply) = reply {
            reply.reply(stats);
        }
        ExitReason::Normal
    }
}

/// Ends `job` `error: <why>` in the store and counts it; a store that cannot record it is
/// logged with `could_not`.
fn fail_job(store: &dyn JobStore, ended: &Ended, mut job: Job, why: &str, could_not: &str) {
    job.status = JobStatus::Error;
    job.error = Some(why.to_string());
    job.finished_at = Some(SystemTime::now());
    if let Err(error) = store.complete(&job) {
        warn!(job = %job.id, %error, "{could_not}");
    }
    ended.add(JobStatus::Error);
}
