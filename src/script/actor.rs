//! [`RhaiActor`]: the built-in job actor, which runs each job's script in the sandbox.

use std::sync::Arc;

use super::{Sandbox, SandboxConfig, ScriptError};
use crate::jobs::{CancelToken, Job, JobActor, JobResult};

/// The built-in actor: runs a job's script in its own sandboxed Rhai engine. A script whose
/// native function panicked ends `error: panic: …`; the actor then builds a fresh engine for
/// the next job (the old one might hold state the panic left half-changed).
///
/// Scripts run on the runtime's blocking threads: build the runtime with the stack the
/// sandbox's limits need (`Runtime::builder().blocking_stack_size(Sandbox::stack_size(&limits))`),
/// or each script gets a thread of its own.
pub struct RhaiActor {
    actor_id: String,
    config: SandboxConfig,
    sandbox: std::sync::RwLock<Arc<Sandbox>>,
}

impl RhaiActor {
    /// An actor for the queue `actor_id`, with an engine built from `config`.
    pub fn new(actor_id: impl Into<String>, config: SandboxConfig) -> Self {
        let sandbox = Arc::new(Sandbox::new(config.clone()));
        RhaiActor {
            actor_id: actor_id.into(),
            config,
            sandbox: std::sync::RwLock::new(sandbox),
        }
    }

    /// Its sandbox (the current one: a panic replaces it).
    pub fn sandbox(&self) -> Arc<Sandbox> {
        Arc::clone(
            &self
                .sandbox
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

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
        if let Err(ScriptError::Panic(message)) = &outcome {
            tracing::warn!(job = %job.id, panic = %message, "a native function panicked; the engine is rebuilt");
            let fresh = Arc::new(Sandbox::new(self.config.clone()));
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
