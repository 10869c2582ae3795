//! Jobs: the job model, job stores, job actors and the supervised worker pool.
//!
//! A [`Job`] carries a Rhai script and what became of it; a [`JobStore`] queues jobs and keeps
//! their results ([`MemoryStore`] is the embedded default; the Redis store speaks the Hero
//! wire format). See `docs/jobs.md`.

mod actor;
mod job;
mod pool;
mod store;
pub(crate) mod time;

pub use actor::{CancelToken, JobActor, JobResult};
pub use pool::{ActorFactory, HealthCheck, PoolConfig, PoolError, PoolStats, WorkerPool};

pub use job::{
    AttemptError, DEFAULT_MAX_SCRIPT_BYTES, Job, JobBuilder, JobError, JobStatus, MAX_ERRORS_KEPT,
    MAX_ID_LEN, MAX_PREREQUISITES, Priority, RESERVED_NAMES, retry_delay,
};
pub use store::{JobStore, MemoryStore, StoreError};
