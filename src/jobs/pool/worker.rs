//! A worker: builds its actor, runs batches on the blocking pool, answers pings.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use tracing::{debug, warn};

use crate::jobs::actor::{CancelToken, JobActor};
use crate::jobs::job::{Job, JobStatus};
use crate::jobs::store::JobStore;
use crate::signal::reason::panic_message;
use crate::{Addr, Ctx, ExitReason, Handle, Message};

use super::ActorFactory;
use super::batch::{Abandon, Batch};
use super::dispatcher::DispatchMsg;

/// What a worker receives.
pub(crate) enum WorkerMsg {
    Work(Arc<Batch>),
    Ping(u64),
    Ran { batch: u64, panic: Option<String> },
    Pinged(u64, bool),
}

#[derive(Clone)]
pub(super) struct WorkerArgs {
    pub(super) dispatcher: Addr<DispatchMsg>,
    pub(super) factory: ActorFactory,
    pub(super) store: Arc<dyn JobStore>,
}

/// A worker: builds its actor, tells the dispatcher it is ready, runs batches on the
/// blocking pool, answers pings.
pub(super) async fn work(mut ctx: Ctx<WorkerMsg>, args: WorkerArgs) {
    let actor = (args.factory)();
    let me = ctx.pid();
    let _ = ctx.send(&args.dispatcher, DispatchMsg::Ready(me));
    loop {
        match ctx.recv().await {
            Message::User(WorkerMsg::Work(batch)) => {
                let actor = Arc::clone(&actor);
                let store = Arc::clone(&args.store);
                let id = batch.id;
                batch.handed.store(true, Ordering::SeqCst);
                let (handle, dispatcher) = (ctx.handle(), args.dispatcher);
                ctx.spawn_blocking(
                    move || {
                        /// Tells the dispatcher the batch is done, even if running it panics
                        /// outside the jobs' own guard.
                        struct Done(Arc<Batch>, Handle, Addr<DispatchMsg>);
                        impl Drop for Done {
                            fn drop(&mut self) {
                                self.0.done.store(true, Ordering::SeqCst);
                                let _ = self.1.send(&self.2, DispatchMsg::BatchEnded(self.0.id));
                            }
                        }
                        let _done = Done(Arc::clone(&batch), handle, dispatcher);
                        run_batch(&*actor, &*store, &batch)
                    },
                    move |panic| WorkerMsg::Ran { batch: id, panic },
                );
            }
            Message::User(WorkerMsg::Ran { batch, panic }) => {
                let _ = ctx.send(
                    &args.dispatcher,
                    DispatchMsg::BatchDone { worker: me, batch },
                );
                if let Some(message) = panic {
                    // A fresh actor (and engine) after a panic: the supervisor restarts us.
                    ctx.stop(ExitReason::Panic(message.into()));
                }
            }
            Message::User(WorkerMsg::Ping(seq)) => {
                let actor = Arc::clone(&actor);
                ctx.spawn_blocking(move || actor.ping(), move |ok| WorkerMsg::Pinged(seq, ok));
            }
            Message::User(WorkerMsg::Pinged(seq, ok)) => {
                if ok {
                    let _ = ctx.send(&args.dispatcher, DispatchMsg::Pong { worker: me, seq });
                }
            }
            Message::Exit(_) | Message::Down(_) => {}
        }
    }
}

/// Runs a batch's jobs one after the other and records each; stops at a panic (the job that
/// panicked ends `error` with it; the rest stay in the batch for the dispatcher to take back).
/// Each ended job is counted in the batch's `ended`. Returns the panic message, if any.
pub(super) fn run_batch(
    actor: &dyn JobActor,
    store: &dyn JobStore,
    batch: &Batch,
) -> Option<String> {
    loop {
        let token = CancelToken::new();
        let next = {
            // Popped and marked current under the jobs lock, which `Batch::cancel` also holds:
            // a cancel finds the job either waiting or running, never in between.
            let mut jobs = batch.jobs.lock().unwrap_or_else(PoisonError::into_inner);
            let next = jobs.pop_front();
            if let Some(job) = &next {
                batch.stopped.store(false, Ordering::SeqCst);
                *batch.current.lock().unwrap_or_else(PoisonError::into_inner) =
                    Some((job.id.clone(), token.clone()));
            }
            next
        };
        // Nothing left: the batch is done.
        let mut job = next?;
        // Started now: this run counts as an attempt (a job taken and never started does not).
        job.started_at = Some(SystemTime::now());
        job.status = JobStatus::Started;
        job.attempts = job.attempts.saturating_add(1);
        if let Err(error) = store.start(&job) {
            warn!(job = %job.id, %error, "could not record a job's start; it runs all the same");
        }
        if batch.cancel.is_cancelled() {
            token.cancel();
        }
        let result = catch_unwind(AssertUnwindSafe(|| actor.process_job(&job, &token)));
        *batch.current.lock().unwrap_or_else(PoisonError::into_inner) = None;
        job.finished_at = Some(SystemTime::now());
        let panic = match result {
            Ok(result) => {
                job.log = result.log;
                match result.outcome {
                    Ok(output) => {
                        job.status = JobStatus::Finished;
                        job.output = Some(output);
                    }
                    Err(error) => {
                        // A stopped job ends `cancelled`, whatever became of its batch.
                        let abandoned = if batch.stopped.load(Ordering::SeqCst) {
                            None
                        } else {
                            batch
                                .abandoned
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .clone()
                        };
                        let stopped = batch.stopped.load(Ordering::SeqCst);
                        match abandoned {
                            None if !stopped && job.may_retry() => {
                                job.error = Some(error);
                                retry(store, job);
                                continue;
                            }
                            Some(Abandon::Requeue) => {
                                if let Err(error) = store.release(&job) {
                                    warn!(job = %job.id, %error, "could not requeue a job");
                                }
                                continue;
                            }
                            Some(Abandon::Forget) => continue,
                            Some(Abandon::Fail(why)) => job.error = Some(why),
                            None => job.error = Some(error),
                        }
                        job.status = JobStatus::Error;
                    }
                }
                None
            }
            Err(payload) => {
                let message = panic_message(&*payload).to_string();
                job.status = JobStatus::Error;
                job.error = Some(format!("worker crashed: panic: {message}"));
                if job.may_retry() {
                    retry(store, job);
                    return Some(message);
                }
                Some(message)
            }
        };
        if let Err(error) = store.complete(&job) {
            warn!(job = %job.id, %error, "could not record a job's result");
        }
        batch.ended.add(job.status);
        if panic.is_some() {
            return panic;
        }
    }
}

/// Hands a job whose run failed (`job.error` says why) and that has retries left back to the
/// store, to run again after its backoff.
fn retry(store: &dyn JobStore, mut job: Job) {
    let delay = job.next_delay();
    job.status = JobStatus::Dispatched;
    debug!(job = %job.id, attempt = job.attempts, ?delay, "a job's run failed; it runs again later");
    if let Err(error) = store.retry(&job, delay) {
        warn!(job = %job.id, %error, "could not queue a failed job to run again");
    }
}
