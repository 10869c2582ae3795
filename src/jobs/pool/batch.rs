//! A batch: the jobs handed to a worker at once, shared by the dispatcher, the worker and the
//! blocking thread that runs them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::jobs::actor::CancelToken;
use crate::jobs::job::{Job, JobStatus};

/// Jobs handed to a worker at once. The worker pops them one at a time; the dispatcher takes
/// back those not started if the worker dies.
pub(crate) struct Batch {
    pub(super) id: u64,
    pub(super) jobs: Mutex<VecDeque<Job>>,
    /// Set when the batch is given up.
    pub(super) cancel: CancelToken,
    /// Why the batch was given up: its running job then ends with this.
    pub(super) abandoned: Mutex<Option<Abandon>>,
    /// The job running now, and its own cancel token.
    pub(super) current: Mutex<Option<(String, CancelToken)>>,
    /// The running job was cancelled by [`Batch::cancel`] (a stop): it ends `cancelled` even
    /// if the batch is given up to be requeued meanwhile.
    pub(super) stopped: AtomicBool,
    /// Set by the worker when it hands the batch to the blocking pool (a batch sent to a
    /// worker that died first never runs).
    pub(super) handed: AtomicBool,
    /// Set by the blocking thread that ran the batch when it is done.
    pub(super) done: AtomicBool,
    /// The pool's count of ended jobs: the batch adds its own as they end.
    pub(super) ended: Arc<Ended>,
}

/// Jobs ended by a pool's batches and by its dispatcher, counted where they end (a batch
/// whose worker died still counts its jobs).
#[derive(Default)]
pub(super) struct Ended {
    pub(super) finished: AtomicU64,
    pub(super) failed: AtomicU64,
}

impl Ended {
    pub(super) fn add(&self, status: JobStatus) {
        let counter = if status == JobStatus::Finished {
            &self.finished
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What becomes of the running job of a batch that is given up.
#[derive(Clone, Debug)]
pub(super) enum Abandon {
    /// It ends `error` with this message.
    Fail(String),
    /// It goes back to the store's queue (`JobStore::release`).
    Requeue,
    /// Nothing is written: its dispatcher is gone and a new one (or a reaper) owns it.
    Forget,
}

impl Batch {
    pub(super) fn new(id: u64, jobs: VecDeque<Job>, ended: Arc<Ended>) -> Batch {
        Batch {
            id,
            jobs: Mutex::new(jobs),
            cancel: CancelToken::new(),
            abandoned: Mutex::new(None),
            current: Mutex::new(None),
            stopped: AtomicBool::new(false),
            handed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ended,
        }
    }

    pub(super) fn take_back(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
            .collect()
    }

    pub(super) fn abandon(&self, why: Abandon) {
        *self
            .abandoned
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why);
        self.cancel.cancel();
        if let Some((_, token)) = &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            token.cancel();
        }
    }

    /// Cancels job `id` if it is in this batch: a running one is told to stop (and
    /// `Cancelled::Running` returned), one not started is taken out and returned.
    pub(super) fn cancel(&self, id: &str) -> Option<Cancelled> {
        // The jobs lock first, as `run_batch` takes them, so the job cannot be between the
        // queue and `current` while we look.
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(index) = jobs.iter().position(|j| j.id == id) {
            return jobs
                .remove(index)
                .map(|job| Cancelled::Waiting(Box::new(job)));
        }
        match &*self.current.lock().unwrap_or_else(PoisonError::into_inner) {
            Some((running, token)) if running == id => {
                self.stopped.store(true, Ordering::SeqCst);
                token.cancel();
                Some(Cancelled::Running)
            }
            _ => None,
        }
    }
}

/// What [`Batch::cancel`] found.
pub(super) enum Cancelled {
    /// The job was running: it was told to stop.
    Running,
    /// The job had not started: here it is.
    Waiting(Box<Job>),
}
