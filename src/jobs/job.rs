//! The job model: what a job is, its statuses, and the validation that refuses a bad one with
//! an error naming the field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

/// The largest script a job may carry unless configured otherwise (1 MiB).
pub const DEFAULT_MAX_SCRIPT_BYTES: usize = 1024 * 1024;

/// The longest id (job, caller, context or actor) accepted.
pub const MAX_ID_LEN: usize = 256;

/// Where a job is in its life, spelled as the Hero protocol spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobStatus {
    /// Submitted, waiting for a worker.
    Dispatched,
    /// Waiting for its prerequisites to finish before it is queued.
    Waiting,
    /// A worker is running it.
    Started,
    /// It ran to the end; `output` holds its value.
    Finished,
    /// It failed; `error` says why.
    Error,
}

impl JobStatus {
    /// The wire spelling: `dispatched`, `waiting_for_prerequisites`, `started`, `finished`,
    /// `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Dispatched => "dispatched",
            JobStatus::Waiting => "waiting_for_prerequisites",
            JobStatus::Started => "started",
            JobStatus::Finished => "finished",
            JobStatus::Error => "error",
        }
    }

    /// `Finished` or `Error`.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Finished | JobStatus::Error)
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = JobError;

    fn from_str(s: &str) -> Result<Self, JobError> {
        match s {
            "dispatched" => Ok(JobStatus::Dispatched),
            "waiting_for_prerequisites" => Ok(JobStatus::Waiting),
            "started" => Ok(JobStatus::Started),
            "finished" => Ok(JobStatus::Finished),
            "error" => Ok(JobStatus::Error),
            other => Err(JobError::InvalidField {
                field: "status",
                reason: format!("unknown status {other:?}"),
            }),
        }
    }
}

/// Why a job was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The script is empty.
    #[error("field `script`: a job needs a script")]
    MissingScript,
    /// The script is over the size limit.
    #[error("field `script`: {size} bytes is over the limit of {limit} bytes")]
    ScriptTooLarge {
        /// Its size in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The timeout is zero.
    #[error("field `timeout`: must be at least one second")]
    ZeroTimeout,
    /// A field has the wrong form.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// A job: a Rhai script to run, who asked for it, and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Its id (a UUID v4 unless given).
    pub id: String,
    /// Who submitted it.
    pub caller_id: String,
    /// The context it runs in.
    pub context_id: String,
    /// The actor (worker pool) that runs it.
    pub actor_id: String,
    /// The Rhai script.
    pub script: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The script's last value, as text (JSON for maps and arrays), once finished.
    pub output: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When it was made.
    pub created_at: SystemTime,
    /// When a worker started it.
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: Option<SystemTime>,
    /// How long it may run (whole seconds on the wire).
    pub timeout: Duration,
    /// How many times it is run again after a failed run: a script error, a timeout, a
    /// panic, or (Redis store) its runner's death while it ran. Default 0.
    pub retries: u32,
    /// How many times a worker has started it (the run now going on included).
    pub attempts: u32,
    /// The wait before each run again: fixed, or `None` for the default schedule
    /// ([`retry_delay`]: exponential, with jitter, as Sidekiq's).
    pub backoff: Option<Duration>,
    /// The errors of its failed runs, oldest first (the last [`MAX_ERRORS_KEPT`]).
    pub errors: Vec<AttemptError>,
    /// How soon it is served among its actor's queued jobs.
    pub priority: Priority,
    /// Jobs that must all finish before this one is queued; if one of them ends in error
    /// for good, this one ends in error naming it, without running.
    pub prerequisites: Vec<String>,
    /// Values the script sees as constants.
    pub env_vars: BTreeMap<String, String>,
    /// What the script printed (`print` and `debug`), in order.
    pub log: Vec<String>,
    /// Not to run before this time: both stores keep it out of its queue until then. Between
    /// the runs of a job that failed with retries left, the time of its next run.
    pub run_at: Option<SystemTime>,
}

impl Job {
    /// A job builder for `script`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use baobab::jobs::{Job, JobStatus};
    ///
    /// let job = Job::builder("40 + 2")
    ///     .caller_id("alice")
    ///     .timeout(Duration::from_secs(5))
    ///     .env("GREETING", "hello")
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(job.status, JobStatus::Dispatched);
    /// assert_eq!(job.id.len(), 36);
    /// assert!(Job::builder("").build().is_err());
    /// ```
    pub fn builder(script: impl Into<String>) -> JobBuilder {
        JobBuilder {
            id: None,
            caller_id: "anonymous".into(),
            context_id: "default".into(),
            actor_id: "rhai".into(),
            script: script.into(),
            timeout: Duration::from_secs(30),
            retries: 0,
            backoff: None,
            priority: Priority::Normal,
            prerequisites: Vec::new(),
            env_vars: BTreeMap::new(),
            max_script_bytes: DEFAULT_MAX_SCRIPT_BYTES,
            run_at: None,
        }
    }

    /// Checks every field; the first that is wrong is named in the error.
    pub fn validate(&self, max_script_bytes: usize) -> Result<(), JobError> {
        check_id("id", &self.id)?;
        check_id("caller_id", &self.caller_id)?;
        check_id("context_id", &self.context_id)?;
        check_id("actor_id", &self.actor_id)?;
        if self.script.trim().is_empty() {
            return Err(JobError::MissingScript);
        }
        if self.script.len() > max_script_bytes {
            return Err(JobError::ScriptTooLarge {
                size: self.script.len(),
                limit: max_script_bytes,
            });
        }
        if self.timeout.is_zero() {
            return Err(JobError::ZeroTimeout);
        }
        for name in self.env_vars.keys() {
            check_env_name(name)?;
        }
        for id in &self.prerequisites {
            check_id("prerequisites", id)?;
            if *id == self.id {
                return Err(JobError::InvalidField {
                    field: "prerequisites",
                    reason: "a job cannot wait for itself".into(),
                });
            }
        }
        if self.prerequisites.len() > MAX_PREREQUISITES {
            return Err(JobError::InvalidField {
                field: "prerequisites",
                reason: format!(
                    "{} ids is over the limit of {MAX_PREREQUISITES}",
                    self.prerequisites.len()
                ),
            });
        }
        Ok(())
    }

    /// Whether a run that just failed leaves it a run again: it has been started at most
    /// `retries` times.
    pub fn may_retry(&self) -> bool {
        self.attempts <= self.retries
    }

    /// How long to wait before running it again after its latest failed run: its
    /// [`backoff`](Job::backoff), or the default schedule ([`retry_delay`]).
    pub fn next_delay(&self) -> Duration {
        self.backoff
            .unwrap_or_else(|| retry_delay(self.attempts, rand_jitter()))
    }

    /// Adds its latest run, which failed with `error` at `at`, to [`errors`](Job::errors),
    /// keeping the last [`MAX_ERRORS_KEPT`].
    pub fn note_failure(&mut self, at: SystemTime) {
        self.errors.push(AttemptError {
            attempt: self.attempts,
            at: crate::jobs::time::iso8601(at),
            error: self.error.clone().unwrap_or_default(),
        });
        let excess = self.errors.len().saturating_sub(MAX_ERRORS_KEPT);
        self.errors.drain(..excess);
    }

    /// How long it ran, once it has ended.
    pub fn run_time(&self) -> Option<Duration> {
        let (start, end) = (self.started_at?, self.finished_at?);
        end.duration_since(start).ok()
    }
}

/// How soon a job is served among its actor's queued jobs: runners take from the `high`
/// queue first, then `normal`, then `low`, except that a share of takes starts lower so
/// that no priority starves (see the wire format's documentation).
/// Ordered as served: `High < Normal < Low`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    /// Served first.
    High,
    /// The default.
    #[default]
    Normal,
    /// Served last.
    Low,
}

impl Priority {
    /// `high`, `normal` or `low`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = JobError;

    fn from_str(s: &str) -> Result<Self, JobError> {
        match s {
            "high" => Ok(Priority::High),
            "normal" | "" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            other => Err(JobError::InvalidField {
                field: "priority",
                reason: format!("unknown priority {other:?} (high, normal or low)"),
            }),
        }
    }
}

/// The most prerequisites a job may have.
pub const MAX_PREREQUISITES: usize = 64;

/// The errors kept per job ([`Job::errors`]): the latest this many.
pub const MAX_ERRORS_KEPT: usize = 25;

/// A failed run of a job: which one, when, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptError {
    /// Which run failed (1 for the first).
    pub attempt: u32,
    /// When it failed, ISO 8601 UTC as the wire format writes times (empty if unknown).
    #[serde(default)]
    pub at: String,
    /// Why.
    pub error: String,
}

/// The default wait before running a job again after its `attempts`-th run failed, as
/// Sidekiq spaces retries: `attempts⁴ + 15 + jitter × (attempts + 1)` seconds, the jitter a
/// number in `0..10` (so 16–36 s after the first failure, 31–61 s after the second, 96–136 s
/// after the third, about 3 hours after the tenth).
///
/// ```
/// use std::time::Duration;
/// use baobab::jobs::retry_delay;
///
/// assert_eq!(retry_delay(1, 0.0), Duration::from_secs(16));
/// assert_eq!(retry_delay(2, 9.0), Duration::from_secs(16 + 15 + 27));
/// ```
pub fn retry_delay(attempts: u32, jitter: f64) -> Duration {
    let n = f64::from(attempts.max(1));
    let secs = n.powi(4) + 15.0 + jitter.clamp(0.0, 10.0) * (n + 1.0);
    Duration::from_secs_f64(secs.min(30.0 * 24.0 * 3600.0))
}

/// A jitter in `0..10` for [`retry_delay`].
fn rand_jitter() -> f64 {
    f64::from(uuid::Uuid::new_v4().as_u128() as u32 % 10_000) / 1000.0
}

/// Names the script sees whatever the job's env vars say; an env var may not take them.
pub const RESERVED_NAMES: [&str; 4] = ["JOB_ID", "CALLER_ID", "CONTEXT_ID", "DB_PATH"];

fn check_id(field: &'static str, value: &str) -> Result<(), JobError> {
    let invalid = |reason: String| Err(JobError::InvalidField { field, reason });
    if value.is_empty() {
        return invalid("must not be empty".into());
    }
    if value.len() > MAX_ID_LEN {
        return invalid(format!("{} bytes is over {MAX_ID_LEN}", value.len()));
    }
    if let Some(c) = value.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return invalid(format!("must not contain {c:?}"));
    }
    Ok(())
}

fn check_env_name(name: &str) -> Result<(), JobError> {
    let invalid = |reason: String| {
        Err(JobError::InvalidField {
            field: "env_vars",
            reason,
        })
    };
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid(format!(
            "{name:?} is not a valid name (letters, digits, `_`)"
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return invalid(format!("{name:?} is reserved for the job context"));
    }
    Ok(())
}

/// Builds a [`Job`], validating it.
#[derive(Clone, Debug)]
pub struct JobBuilder {
    id: Option<String>,
    caller_id: String,
    context_id: String,
    actor_id: String,
    script: String,
    timeout: Duration,
    retries: u32,
    backoff: Option<Duration>,
    priority: Priority,
    prerequisites: Vec<String>,
    env_vars: BTreeMap<String, String>,
    max_script_bytes: usize,
    run_at: Option<SystemTime>,
}

impl JobBuilder {
    /// Sets the id (default: a fresh UUID v4).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the caller (default `anonymous`).
    pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
        self.caller_id = caller_id.into();
        self
    }

    /// Sets the context (default `default`).
    pub fn context_id(mut self, context_id: impl Into<String>) -> Self {
        self.context_id = context_id.into();
        self
    }

    /// Sets the actor (default `rhai`).
    pub fn actor_id(mut self, actor_id: impl Into<String>) -> Self {
        self.actor_id = actor_id.into();
        self
    }

    /// Sets the timeout (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times the job is run again after a failed run (default 0; see
    /// [`Job::retries`]).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Sets its priority (default [`Priority::Normal`]).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Adds a job that must finish before this one is queued (see [`Job::prerequisites`]).
    pub fn prerequisite(mut self, id: impl Into<String>) -> Self {
        self.prerequisites.push(id.into());
        self
    }

    /// Sets a fixed wait before each run again (default: the schedule of [`retry_delay`]).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Not to run before `at` (see [`Job::run_at`]).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Adds an env var the script sees as a constant.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env_vars.insert(name.into(), value.into());
        self
    }

    /// Sets the script size limit (default [`DEFAULT_MAX_SCRIPT_BYTES`]).
    pub fn max_script_bytes(mut self, limit: usize) -> Self {
        self.max_script_bytes = limit;
        self
    }

    /// The job, or the first field that is wrong.
    pub fn build(self) -> Result<Job, JobError> {
        let job = Job {
            id: self.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            caller_id: self.caller_id,
            context_id: self.context_id,
            actor_id: self.actor_id,
            script: self.script,
            status: JobStatus::Dispatched,
            output: None,
            error: None,
            created_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            timeout: self.timeout,
            retries: self.retries,
            attempts: 0,
            backoff: self.backoff,
            errors: Vec::new(),
            priority: self.priority,
            prerequisites: self.prerequisites,
            env_vars: self.env_vars,
            log: Vec::new(),
            run_at: self.run_at,
        };
        job.validate(self.max_script_bytes)?;
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(error: JobError) -> &'static str {
        match error {
            JobError::MissingScript | JobError::ScriptTooLarge { .. } => "script",
            JobError::ZeroTimeout => "timeout",
            JobError::InvalidField { field, .. } => field,
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = [
            (Job::builder("  ").build(), "script"),
            (
                Job::builder("1")
                    .max_script_bytes(4)
                    .build()
                    .map(|_| ())
                    .and(Job::builder("12345").max_script_bytes(4).build()),
                "script",
            ),
            (Job::builder("1").timeout(Duration::ZERO).build(), "timeout"),
            (Job::builder("1").id("").build(), "id"),
            (Job::builder("1").id("a b").build(), "id"),
            (Job::builder("1").id("x".repeat(300)).build(), "id"),
            (Job::builder("1").caller_id("\n").build(), "caller_id"),
            (Job::builder("1").context_id("").build(), "context_id"),
            (Job::builder("1").actor_id("a\tb").build(), "actor_id"),
            (Job::builder("1").env("1X", "v").build(), "env_vars"),
            (Job::builder("1").env("a-b", "v").build(), "env_vars"),
            (Job::builder("1").env("JOB_ID", "v").build(), "env_vars"),
        ];
        for (result, field) in bad {
            let error = result.expect_err(field);
            assert!(error.to_string().contains(field), "{error}");
            assert_eq!(field_of(error), field);
        }
    }

    #[test]
    fn a_good_job_has_defaults_and_a_uuid() {
        let job = Job::builder("40 + 2").env("_NAME1", "x").build().unwrap();
        assert_eq!(uuid::Uuid::parse_str(&job.id).unwrap().get_version_num(), 4);
        assert_eq!(job.caller_id, "anonymous");
        assert_eq!(job.status, JobStatus::Dispatched);
        assert!(job.run_time().is_none());
    }

    #[test]
    fn statuses_round_trip_through_their_wire_spelling() {
        for status in [
            JobStatus::Dispatched,
            JobStatus::Started,
            JobStatus::Finished,
            JobStatus::Error,
        ] {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!("completed".parse::<JobStatus>().is_err());
    }
}
