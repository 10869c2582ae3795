//! Job actors: what processes jobs (`JobActor`, and the built-in `RhaiActor`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::job::Job;

/// Tells a running job to stop: set by the pool when it cancels jobs (shutdown) or when the
/// job's worker exits.
#[derive(Clone, Debug, Default)]
pub struct CancelToken {
    flag: Arc<AtomicBool>,
}

impl CancelToken {
    /// A token not yet cancelled.
    pub fn new() -> Self {
        CancelToken::default()
    }

    /// Cancels.
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The flag itself (the Rhai sandbox checks it from its progress callback).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.flag)
    }
}

/// What processing a job gave: its output or why it failed, and what it logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobResult {
    /// The output (`Ok`) or the error message (`Err`).
    pub outcome: Result<String, String>,
    /// Lines the job logged.
    pub log: Vec<String>,
}

/// Processes jobs. Implement it and give the worker pool a factory for it: the pool builds one
/// actor per worker (a restarted worker gets a fresh one).
///
/// `process_job` runs on the runtime's blocking pool, so it may block. It should honour the
/// job's `timeout` and the cancel token; the built-in `script::RhaiActor` does both.
///
/// ```
/// use baobab::jobs::{CancelToken, Job, JobActor, JobResult};
///
/// struct Upper;
///
/// impl JobActor for Upper {
///     fn actor_id(&self) -> &str { "upper" }
///     fn actor_type(&self) -> &str { "Upper" }
///     fn process_job(&self, job: &Job, _cancel: &CancelToken) -> JobResult {
///         JobResult { outcome: Ok(job.script.to_uppercase()), log: Vec::new() }
///     }
/// }
///
/// let job = Job::builder("shout").actor_id("upper").build().unwrap();
/// assert_eq!(Upper.process_job(&job, &CancelToken::new()).outcome, Ok("SHOUT".into()));
/// ```
pub trait JobActor: Send + Sync + 'static {
    /// The actor id: the queue it takes jobs from.
    fn actor_id(&self) -> &str;

    /// What kind of actor it is.
    fn actor_type(&self) -> &str;

    /// Processes one job.
    fn process_job(&self, job: &Job, cancel: &CancelToken) -> JobResult;

    /// Answers a health check; `false` (or never returning) counts as a missed ping.
    fn ping(&self) -> bool {
        true
    }
}
