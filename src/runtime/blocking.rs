//! The blocking pool, the BEAM's dirty schedulers: threads for work that blocks (I/O, long
//! computations), so scheduler threads never do.
//!
//! Work is owned by a process. Its result comes back to that process (the `await` of
//! [`Ctx::blocking`] resumes, or a message for [`Ctx::spawn_blocking`]); its panic becomes the
//! process's exit with reason `panic`. If the process exits first, the work is abandoned: it
//! runs to its end and its result is dropped (a thread cannot be killed safely).

use std::collections::VecDeque;
use std::future::poll_fn;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use tracing::warn;

use crate::process::context::Ctx;
use crate::process::mailbox::Mail;
use crate::signal::ExitReason;
use crate::signal::reason::panic_message;
use crate::signal::rules::SignalKind;

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

impl<M: Send + 'static> Ctx<M> {
    /// Runs `work` on the blocking pool and waits for its result without holding a scheduler
    /// thread. A panic in `work` ends this process with reason `panic`.
    ///
    /// ```
    /// let rt = baobab::Runtime::new();
    /// let n = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
    ///     ctx.blocking(|| { std::thread::sleep(std::time::Duration::from_millis(1)); 7 }).await
    /// });
    /// assert_eq!(n.unwrap(), 7);
    /// ```
    pub async fn blocking<T: Send + 'static>(
        &mut self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let slot: Arc<Mutex<Option<std::thread::Result<T>>>> = Arc::default();
        let filled = Arc::clone(&slot);
        let owner = Arc::downgrade(&self.cell);
        self.shared().blocking.spawn(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            *filled.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
            if let Some(cell) = owner.upgrade() {
                cell.schedule();
            }
        }));
        let this = &mut *self;
        poll_fn(move |_| {
            let result = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            match result {
                Some(Ok(value)) => Poll::Ready(value),
                Some(Err(payload)) => this.stop(ExitReason::Panic(panic_message(&*payload))),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Runs `work` on the blocking pool and sends `into_message(result)` to this process when it
    /// is done: the way for a [`Behaviour`](crate::Behaviour) to do blocking work. A panic in
    /// `work` ends this process with reason `panic`.
    pub fn spawn_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
        into_message: impl FnOnce(T) -> M + Send + 'static,
    ) {
        let owner = Arc::downgrade(&self.cell);
        let pid = self.pid();
        self.shared().blocking.spawn(Box::new(move || {
            let result = catch_unwind(AssertUnwindSafe(work));
            let Some(cell) = owner.upgrade() else { return };
            match result {
                Ok(value) => {
                    let envelope =
                        Mail::User(crate::process::mailbox::payload(into_message(value)));
                    let _ = cell.shared.send(pid, envelope);
                }
                Err(payload) => {
                    let reason = ExitReason::Panic(panic_message(&*payload));
                    cell.signal_exit(pid, &reason, SignalKind::Forced);
                }
            }
        }));
    }
}
