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
/// job's `timeout` and the cancel token; the built-in [`RhaiActor`] does both.
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

/// The built-in actor: runs a job's script in its own sandboxed Rhai engine. A script whose
/// native function panicked ends `error: panic: …`; the actor then builds a fresh engine for
/// the next job (the old one might hold state the panic left half-changed).
///
/// Scripts run on the runtime's blocking threads: build the runtime with the stack the
/// sandbox's limits need (`Runtime::builder().blocking_stack_size(Sandbox::stack_size(&limits))`),
/// or each script gets a thread of its own.
#[cfg(feature = "rhai")]
pub struct RhaiActor {
    actor_id: String,
    config: crate::script::SandboxConfig,
    sandbox: std::sync::RwLock<Arc<crate::script::Sandbox>>,
}

#[cfg(feature = "rhai")]
impl RhaiActor {
    /// An actor for the queue `actor_id`, with an engine built from `config`.
    pub fn new(actor_id: impl Into<String>, config: crate::script::SandboxConfig) -> Self {
        let sandbox = Arc::new(crate::script::Sandbox::new(config.clone()));
        RhaiActor {
            actor_id: actor_id.into(),
            config,
            sandbox: std::sync::RwLock::new(sandbox),
        }
    }

    /// Its sandbox (the current one: a panic replaces it).
    pub fn sandbox(&self) -> Arc<crate::script::Sandbox> {
        Arc::clone(
            &self
                .sandbox
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(feature = "rhai")]
impl JobActor for RhaiActor {
    fn actor_id(&self) -> &str {
        &self.actor_id
    }

    fn actor_type(&self) -> &str {
        "RhaiActor"
    }

    fn process_job(&self, job: &Job, cancel: &CancelToken) -> JobResult {
        let sandbox = self.sandbox();
        let (outcome, log) = sandbox.run_logged(job, Some(cancel.flag()));
        if let Err(crate::script::ScriptError::Panic(message)) = &outcome {
            tracing::warn!(job = %job.id, panic = %message, "a native function panicked; the engine is rebuilt");
            let fresh = Arc::new(crate::script::Sandbox::new(self.config.clone()));
            *self
                .sandbox
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
        JobResult {
            outcome: outcome.map_err(|error| error.to_string()),
            log,
        }
    }

    fn ping(&self) -> bool {
        let job = Job::builder("\"pong\"")
            .id("ping")
            .build()
            .expect("a valid job");
        self.sandbox()
            .run(&job, None)
            .is_ok_and(|done| done.output == "pong")
    }
}
