//! Where jobs wait and where their results go: the [`JobStore`] trait, and [`MemoryStore`], the
//! embedded default (the Redis store implements the same trait).

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::job::{Job, JobStatus};

/// Why a store operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(String),
    /// A job with this id exists already.
    #[error("a job {0} exists already")]
    Duplicate(String),
    /// The job did not end within the wait.
    #[error("job {0} did not end in time")]
    Timeout(String),
    /// The store is closed: it takes no new jobs and hands none out.
    #[error("the job store is closed")]
    Closed,
    /// The backend failed (a Redis error, say).
    #[error("job store backend: {0}")]
    Backend(String),
}

/// A place jobs are submitted to, taken from by workers, and completed in.
///
/// Calls may block (a network store waits on I/O): the worker pool calls them from the
/// runtime's blocking pool, never from a scheduler thread.
pub trait JobStore: Send + Sync + 'static {
    /// Queues `job` (status `dispatched`) for its actor.
    fn submit(&self, job: Job) -> Result<(), StoreError>;

    /// Takes up to `max` queued jobs of `actor_id`, oldest first, waiting up to `wait` for the
    /// first. Empty when nothing came in time. A worker marks each one `started` when it
    /// starts it ([`start`](JobStore::start)).
    fn take(&self, actor_id: &str, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError>;

    /// Records that a worker starts `job` now (status `started`, its `started_at`, and its
    /// `attempts`, this run counted). A job taken and never started does not count as run:
    /// a store that takes back a dead runner's jobs requeues those without using a retry.
    /// The default records nothing.
    fn start(&self, job: &Job) -> Result<(), StoreError> {
        let _ = job;
        Ok(())
    }

    /// Records the end of a run that failed while the job has retries left
    /// ([`Job::may_retry`]): `job.error` says why; the store adds the failure to its
    /// `errors`.
    /// The job waits `delay`, then is queued again (status `dispatched`). The default, for a
    /// store that cannot wait, ends the job as [`complete`](JobStore::complete) would.
    fn retry(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let _ = delay;
        let mut ended = job.clone();
        ended.status = JobStatus::Error;
        self.complete(&ended)
    }

    /// Records the job's end: its status (`finished` or `error`), output, error, log and times.
    fn complete(&self, job: &Job) -> Result<(), StoreError>;

    /// The job as the store has it.
    fn get(&self, id: &str) -> Result<Option<Job>, StoreError>;

    /// The job's status.
    fn status(&self, id: &str) -> Result<Option<JobStatus>, StoreError> {
        Ok(self.get(id)?.map(|job| job.status))
    }

    /// Waits up to `timeout` for the job to end; returns it ended.
    fn wait(&self, id: &str, timeout: Duration) -> Result<Job, StoreError>;

    /// Stops handing out jobs: takers waiting now return empty, later submits fail with
    /// [`StoreError::Closed`]. Jobs already taken can still complete.
    fn close(&self);

    /// How many jobs of `actor_id` are queued and not taken.
    fn queued(&self, actor_id: &str) -> Result<usize, StoreError>;

    /// Gives a job that was taken and not finished back to its queue, to be taken next, as if
    /// it had never been taken (a runner shutting down hands back what it did not run).
    fn release(&self, job: &Job) -> Result<(), StoreError>;

    /// Gives back every job of `actor_id` this runner took and has not finished: called when a
    /// worker pool (re)starts, so a crashed pool's jobs are not stuck. Returns how many. The
    /// in-memory store keeps no owner per job: nothing to do.
    fn recover(&self, actor_id: &str) -> Result<usize, StoreError> {
        let _ = actor_id;
        Ok(0)
    }
}

/// The embedded, in-memory job store: the runner's default, needing no Redis.
///
/// ```
/// use std::time::Duration;
/// use baobab::jobs::{Job, JobStatus, JobStore, MemoryStore};
///
/// let store = MemoryStore::new();
/// let job = Job::builder("40 + 2").build().unwrap();
/// let id = job.id.clone();
/// store.submit(job).unwrap();
/// let mut taken = store.take("rhai", 10, Duration::ZERO).unwrap();
/// assert_eq!(taken[0].status, JobStatus::Started);
/// taken[0].status = JobStatus::Finished;
/// taken[0].output = Some("42".into());
/// store.complete(&taken[0]).unwrap();
/// assert_eq!(store.wait(&id, Duration::from_secs(1)).unwrap().output.as_deref(), Some("42"));
/// ```
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// Signalled when a job is queued (or the store closes).
    queued: Condvar,
    /// Signalled when a job ends.
    ended: Condvar,
}

#[derive(Default)]
struct State {
    jobs: HashMap<String, Job>,
    queues: HashMap<String, VecDeque<String>>,
    /// Ids not to queue before their time (a `run_at` to come, a retry's backoff).
    delayed: Vec<(Instant, String)>,
    /// Per job, the jobs waiting for it to end (their prerequisite).
    dependents: HashMap<String, Vec<String>>,
    takers: usize,
    waiters: usize,
    closed: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets an ended job (to bound memory when results have been read).
    pub fn remove(&self, id: &str) -> Option<Job> {
        let mut state = self.lock();
        match state.jobs.get(id) {
            Some(job) if job.status.is_final() => state.jobs.remove(id),
            _ => None,
        }
    }

    /// How many jobs the store holds, in any status.
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Whether it holds no job.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a job's prerequisites allow.
enum Gate {
    /// All finished (or none): queue it.
    Run,
    /// Some not ended yet: wait for these.
    Wait(Vec<String>),
    /// One is missing or failed: end it `error`, with this.
    Fail(String),
}

impl State {
    /// The stored job `id`.
    fn stored(&mut self, id: &str) -> Result<&mut Job, StoreError> {
        self.jobs
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    fn gate(&self, job: &Job) -> Gate {
        let mut pending = Vec::new();
        for id in &job.prerequisites {
            match self.jobs.get(id).map(|p| p.status) {
                None => return Gate::Fail(format!("prerequisite {id}: no such job")),
                Some(JobStatus::Error) => {
                    return Gate::Fail(format!("prerequisite {id} ended in error"));
                }
                Some(JobStatus::Finished) => {}
                Some(_) => pending.push(id.clone()),
            }
        }
        if pending.is_empty() {
            Gate::Run
        } else {
            Gate::Wait(pending)
        }
    }

    /// Queues the jobs waiting on `id`, which ended (`finished` or not), whose prerequisites
    /// have all finished; or ends them `error` naming it, and theirs in turn.
    fn settle(&mut self, id: &str, finished: bool) {
        let mut todo = vec![(id.to_owned(), finished)];
        while let Some((id, finished)) = todo.pop() {
            for dependent in self.dependents.remove(&id).unwrap_or_default() {
                let Some(job) = self.jobs.get(&dependent) else {
                    continue;
                };
                if job.status != JobStatus::Waiting {
                    continue;
                }
                if finished {
                    if matches!(self.gate(job), Gate::Run) {
                        let actor = job.actor_id.clone();
                        let job = self.jobs.get_mut(&dependent).expect("present");
                        job.status = JobStatus::Dispatched;
                        self.queues.entry(actor).or_default().push_back(dependent);
                    }
                } else {
                    let job = self.jobs.get_mut(&dependent).expect("present");
                    job.status = JobStatus::Error;
                    job.error = Some(format!("prerequisite {id} ended in error"));
                    job.finished_at = Some(SystemTime::now());
                    todo.push((dependent, false));
                }
            }
        }
    }

    /// Keeps `id` out of its queue for `wait`.
    fn delay(&mut self, id: String, wait: Duration) {
        let due = Instant::now()
            .checked_add(wait)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        self.delayed.push((due, id));
    }

    /// Queues the delayed ids that are due at `now`, soonest first; returns when the next
    /// one is due.
    fn promote(&mut self, now: Instant) -> Option<Instant> {
        if self.delayed.is_empty() {
            return None;
        }
        self.delayed.sort_by_key(|(due, _)| *due);
        let due = self.delayed.partition_point(|(at, _)| *at <= now);
        for (_, id) in self.delayed.drain(..due) {
            if let Some(job) = self.jobs.get(&id) {
                self.queues
                    .entry(job.actor_id.clone())
                    .or_default()
                    .push_back(id);
            }
        }
        self.delayed.first().map(|(due, _)| *due)
    }
}

impl JobStore for MemoryStore {
    fn submit(&self, job: Job) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.closed {
            return Err(StoreError::Closed);
        }
        if state.jobs.contains_key(&job.id) {
            return Err(StoreError::Duplicate(job.id));
        }
        let wait = job
            .run_at
            .and_then(|at| at.duration_since(SystemTime::now()).ok());
        let mut job = job;
        match state.gate(&job) {
            Gate::Run => {}
            Gate::Fail(why) => {
                job.status = JobStatus::Error;
                job.error = Some(why);
                job.finished_at = Some(SystemTime::now());
                state.jobs.insert(job.id.clone(), job);
                drop(state);
                self.ended.notify_all();
                return Ok(());
            }
            Gate::Wait(pending) => {
                job.status = JobStatus::Waiting;
                for prerequisite in pending {
                    state
                        .dependents
                        .entry(prerequisite)
                        .or_default()
                        .push(job.id.clone());
                }
                state.jobs.insert(job.id.clone(), job);
                return Ok(());
            }
        }
        match wait {
            Some(wait) => state.delay(job.id.clone(), wait),
            None => state
                .queues
                .entry(job.actor_id.clone())
                .or_default()
                .push_back(job.id.clone()),
        }
        state.jobs.insert(job.id.clone(), job);
        let wake = state.takers > 0;
        drop(state);
        if wake {
            self.queued.notify_all();
        }
        Ok(())
    }

    fn take(&self, actor_id: &str, max: usize, wait: Duration) -> Result<Vec<Job>, StoreError> {
        let deadline = Instant::now().checked_add(wait);
        let mut state = self.lock();
        loop {
            if state.closed {
                return Ok(Vec::new());
            }
            let now = Instant::now();
            let next_due = state.promote(now);
            let available = state.queues.get(actor_id).map_or(0, VecDeque::len);
            if available > 0 || max == 0 {
                break;
            }
            let Some(left) = deadline.and_then(|d| d.checked_duration_since(now)) else {
                return Ok(Vec::new());
            };
            if left.is_zero() {
                return Ok(Vec::new());
            }
            // Awake again when the next delayed job is due.
            let left = next_due.map_or(left, |due| left.min(due.saturating_duration_since(now)));
            state.takers += 1;
            state = self
                .queued
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.takers -= 1;
        }
        let now = SystemTime::now();
        let State { jobs, queues, .. } = &mut *state;
        let queue = queues.get_mut(actor_id).expect("non-empty queue");
        let n = queue.len().min(max);
        let taken = queue
            .drain(..n)
            .filter_map(|id| {
                let job = jobs.get_mut(&id)?;
                job.status = JobStatus::Started;
                job.started_at = Some(now);
                Some(job.clone())
            })
            .collect();
        Ok(taken)
    }

    fn start(&self, job: &Job) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.stored(&job.id)?;
        stored.status = JobStatus::Started;
        stored.started_at = job.started_at;
        stored.attempts = job.attempts;
        Ok(())
    }

    fn retry(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.stored(&job.id)?;
        stored.status = JobStatus::Dispatched;
        stored.error = job.error.clone();
        stored.errors = job.errors.clone();
        stored.attempts = job.attempts;
        stored.note_failure(job.finished_at.unwrap_or_else(SystemTime::now));
        stored.log = job.log.clone();
        stored.run_at = SystemTime::now().checked_add(delay);
        state.delay(job.id.clone(), delay);
        let wake = state.takers > 0;
        drop(state);
        if wake {
            // Takers wait for the soonest delayed job: this one may be sooner.
            self.queued.notify_all();
        }
        Ok(())
    }

    fn complete(&self, job: &Job) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.stored(&job.id)?;
        stored.status = job.status;
        stored.output = job.output.clone();
        stored.error = job.error.clone();
        stored.attempts = stored.attempts.max(job.attempts);
        if job.status == JobStatus::Error && job.attempts > 0 {
            stored.errors = job.errors.clone();
            stored.note_failure(SystemTime::now());
        }
        stored.log = job.log.clone();
        stored.started_at = job.started_at.or(stored.started_at);
        stored.finished_at = job.finished_at.or(Some(SystemTime::now()));
        if job.status.is_final() {
            state.settle(&job.id, job.status == JobStatus::Finished);
            if state.takers > 0 {
                self.queued.notify_all();
            }
        }
        let wake = state.waiters > 0;
        drop(state);
        if wake {
            self.ended.notify_all();
        }
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.lock().jobs.get(id).cloned())
    }

    fn wait(&self, id: &str, timeout: Duration) -> Result<Job, StoreError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        loop {
            let job = state
                .jobs
                .get(id)
                .ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            if job.status.is_final() {
                return Ok(job.clone());
            }
            let left = deadline
                .and_then(|d| d.checked_duration_since(Instant::now()))
                .filter(|left| !left.is_zero())
                .ok_or_else(|| StoreError::Timeout(id.to_string()))?;
            state.waiters += 1;
            state = self
                .ended
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            state.waiters -= 1;
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.queued.notify_all();
    }

    fn queued(&self, actor_id: &str) -> Result<usize, StoreError> {
        Ok(self.lock().queues.get(actor_id).map_or(0, VecDeque::len))
    }

    fn release(&self, job: &Job) -> Result<(), StoreError> {
        let mut state = self.lock();
        let stored = state.stored(&job.id)?;
        stored.status = JobStatus::Dispatched;
        stored.started_at = None;
        state
            .queues
            .entry(job.actor_id.clone())
            .or_default()
            .push_front(job.id.clone());
        let wake = state.takers > 0;
        drop(state);
        if wake {
            self.queued.notify_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn job(script: &str) -> Job {
        Job::builder(script).build().unwrap()
    }

    #[test]
    fn jobs_are_taken_oldest_first_per_actor_and_in_batches() {
        let store = MemoryStore::new();
        let ids: Vec<String> = (0..5)
            .map(|i| {
                let job = job(&i.to_string());
                let id = job.id.clone();
                store.submit(job).unwrap();
                id
            })
            .collect();
        let other = Job::builder("x").actor_id("other").build().unwrap();
        store.submit(other).unwrap();
        let first = store.take("rhai", 3, Duration::ZERO).unwrap();
        assert_eq!(
            first.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            ids[..3]
        );
        assert_eq!(store.queued("rhai").unwrap(), 2);
        assert_eq!(store.queued("other").unwrap(), 1);
        assert_eq!(store.status(&ids[0]).unwrap(), Some(JobStatus::Started));
        assert_eq!(store.status(&ids[4]).unwrap(), Some(JobStatus::Dispatched));
    }

    #[test]
    fn duplicates_are_refused_and_a_closed_store_takes_nothing() {
        let store = MemoryStore::new();
        let job = job("1");
        store.submit(job.clone()).unwrap();
        assert_eq!(
            store.submit(job.clone()),
            Err(StoreError::Duplicate(job.id.clone()))
        );
        store.close();
        assert_eq!(store.submit(self::job("2")), Err(StoreError::Closed));
        assert!(
            store
                .take("rhai", 1, Duration::from_secs(5))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_waiting_taker_gets_a_job_submitted_later() {
        let store = Arc::new(MemoryStore::new());
        let taker = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || store.take("rhai", 1, Duration::from_secs(10)))
        };
        std::thread::sleep(Duration::from_millis(20));
        store.submit(job("7")).unwrap();
        assert_eq!(taker.join().unwrap().unwrap().len(), 1);
    }

    #[test]
    fn wait_returns_the_ended_job_or_times_out() {
        let store = Arc::new(MemoryStore::new());
        let job = job("1");
        let id = job.id.clone();
        store.submit(job).unwrap();
        assert_eq!(
            store.wait(&id, Duration::from_millis(10)),
            Err(StoreError::Timeout(id.clone()))
        );
        let mut taken = store.take("rhai", 1, Duration::ZERO).unwrap();
        taken[0].status = JobStatus::Error;
        taken[0].error = Some("boom".into());
        let completer = {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                store.complete(&taken[0]).unwrap();
            })
        };
        let ended = store.wait(&id, Duration::from_secs(10)).unwrap();
        assert_eq!(ended.error.as_deref(), Some("boom"));
        assert!(ended.finished_at.is_some());
        completer.join().unwrap();
        assert!(store.remove(&id).is_some());
        assert_eq!(
            store.wait("nope", Duration::ZERO),
            Err(StoreError::NotFound("nope".into()))
        );
    }
}
