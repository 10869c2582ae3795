//! The blocking pool, the BEAM's dirty schedulers: threads for work that blocks (I/O, long
//! computations), so scheduler threads never do.
//!
//! The pool runs boxed closures; the process layer (`process/blocking.rs`: `Ctx::blocking`,
//! `Ctx::spawn_blocking`) makes each one's result come back to the process that owns it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing::warn;

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    idle: usize,
    threads: usize,
    stopped: bool,
}

pub(crate) struct BlockingPool {
    state: Mutex<PoolState>,
    available: Condvar,
    max_threads: usize,
    stack_size: Option<usize>,
    keep_alive: Duration,
}

impl BlockingPool {
    pub(crate) fn new(max_threads: usize, stack_size: Option<usize>) -> Arc<Self> {
        Arc::new(BlockingPool {
            state: Mutex::default(),
            available: Condvar::new(),
            max_threads: max_threads.max(1),
            stack_size,
            keep_alive: Duration::from_secs(10),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`; starts a thread for it if none is idle and the pool may grow.
    pub(crate) fn spawn(self: &Arc<Self>, job: Job) {
        let mut state = self.lock();
        if state.stopped {
            return;
        }
        state.queue.push_back(job);
        // An idle thread that was notified counts as idle until it wakes and takes its job,
        // so "some thread is idle" does not mean one is free for this job: one is only if the
        // queue holds no more jobs than there are idle threads to take them.
        if state.queue.len() <= state.idle {
            drop(state);
            self.available.notify_one();
        } else if state.threads < self.max_threads {
            state.threads += 1;
            drop(state);
            let started = self.start_thread(self.stack_size).or_else(|error| {
                // A large stack the system will not map (a `ulimit -v`, strict overcommit):
                // a thread with the default stack rather than none, so no work waits for ever
                // (the sandbox then runs each script on a thread of its own, or fails it).
                warn!(%error, stack = ?self.stack_size,
                    "could not start a blocking thread with this stack; trying the default");
                self.start_thread(None)
            });
            if let Err(error) = started {
                warn!(%error, "could not start a blocking thread");
                self.lock().threads -= 1;
            }
        }
    }

    fn start_thread(self: &Arc<Self>, stack: Option<usize>) -> std::io::Result<()> {
        let pool = Arc::clone(self);
        let mut builder = std::thread::Builder::new().name("baobab-blocking".into());
        if let Some(bytes) = stack {
            builder = builder.stack_size(bytes);
        }
        builder.spawn(move || pool.run_thread()).map(drop)
    }

    fn run_thread(&self) {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                job();
                state = self.lock();
                continue;
            }
            if state.stopped {
                break;
            }
            state.idle += 1;
            let (next, timeout) = self
                .available
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            state.idle -= 1;
            if timeout.timed_out() && state.queue.is_empty() {
                break;
            }
        }
        state.threads -= 1;
    }

    /// No new work; idle threads leave; running work is abandoned to finish on its own.
    pub(crate) fn stop(&self) {
        let mut state = self.lock();
        state.stopped = true;
        state.queue.clear();
        drop(state);
        self.available.notify_all();
    }
}
