//! Run queues and the choice of the next process.
//!
//! `next_task` is the one seam where the next process is chosen. The default is work
//! stealing: a FIFO local queue per scheduler thread, a global injector for pushes from
//! outside the runtime, and stealing between threads. The seeded mode keeps one queue and
//! picks a pseudo-random runnable process from it with a seeded generator: on one thread with
//! the manual clock, a seed replays the same interleaving.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crossbeam_utils::CachePadded;

use super::park::Sleepers;
use super::watchdog::SliceWatch;

use super::task::{RawTask, Schedulable, Task};

/// A scheduler thread's own state, in a thread-local.
struct Local {
    index: usize,
    queue: Option<Worker<RawTask>>,
    tick: u32,
}

/// Most processes run in a row from the LIFO slot before the queue gets a turn.
const MAX_LIFO_RUNS: u32 = 3;

/// New processes queued on one thread before a spawn wakes a sleeping thread. Below that, a
/// sleeping thread finds them on its own when its park times out (see `park.rs`).
const BACKLOG_WORTH_A_WAKE: usize = 1024;

/// Why a process is queued; it decides the queue end and whether to wake a sleeper.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Push {
    /// A message or signal woke it: the LIFO slot; wake a sleeper if there is other work.
    Woken,
    /// Its slice is over: the back; wake a sleeper if there is other work.
    Yield,
    /// New: the back; wake a sleeper only for a backlog.
    Spawn,
}

thread_local! {
    static CURRENT: RefCell<Option<Local>> = const { RefCell::new(None) };
}

thread_local! {
    /// `(scheduler id, thread index)` of the calling scheduler thread; `(0, 0)` elsewhere
    /// (runtime ids start at 1). A plain `Cell`, so the hot paths read it cheaply.
    static WORKER: Cell<(usize, usize)> = const { Cell::new((0, 0)) };

    /// The process this thread woke last, run next without touching the deque (tokio's LIFO
    /// slot): a reply or a token in a ring is handled while its data is hot in this core's
    /// cache. Other threads cannot steal it. Apart from `Local`, so that a send reaches it
    /// with one thread-local access and no borrow flag.
    static LIFO: Cell<Option<RawTask>> = const { Cell::new(None) };

    /// Processes run in a row from the LIFO slot; capped so a pair that ping-pongs cannot keep
    /// the rest of the queue waiting.
    static LIFO_RUNS: Cell<u32> = const { Cell::new(0) };
}

/// The index of the calling scheduler thread, if it belongs to scheduler `id`.
#[inline]
pub(crate) fn current_index(id: usize) -> Option<usize> {
    let (scheduler, index) = WORKER.with(Cell::get);
    (scheduler == id).then_some(index)
}

/// Whether the calling thread is a scheduler thread of any runtime (the cheap check, for the
/// send path).
#[inline]
pub(crate) fn on_worker_thread() -> bool {
    WORKER.with(Cell::get).0 != 0
}

/// Whether the calling thread is a scheduler thread of any runtime.
pub(crate) fn on_scheduler_thread() -> bool {
    CURRENT.with(|c| c.try_borrow().map(|l| l.is_some()).unwrap_or(true))
}

enum Queues {
    Stealing {
        injector: Box<Injector<RawTask>>,
        stealers: Vec<Stealer<RawTask>>,
    },
    Seeded(std::sync::Mutex<Seeded>),
}

struct Seeded {
    runnable: Vec<RawTask>,
    state: u64,
}

impl Seeded {
    /// xorshift64*: small, fast and the same everywhere.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The run queues of one runtime, for runnables of type `R`. Inside, tasks are `RawTask`s
/// (the thread-locals that hold a thread's queue and LIFO slot cannot be generic); every one of
/// them was made from a `Task<R>` by this scheduler's `schedule*`, and the LIFO slot and local
/// queue a thread uses are those of the scheduler it entered, so `next_task` gives back the
/// `Task<R>` it was.
pub(crate) struct Scheduler<R> {
    id: usize,
    queues: Queues,
    pub(crate) sleepers: Sleepers,
    stop: AtomicBool,
    _runs: PhantomData<fn(R)>,
    /// One per scheduler thread, for the watchdog (`watchdog.rs`).
    watches: Box<[CachePadded<SliceWatch>]>,
}

fn watches(threads: usize) -> Box<[CachePadded<SliceWatch>]> {
    (0..threads).map(|_| CachePadded::default()).collect()
}

impl<R: Schedulable> Scheduler<R> {
    /// A work-stealing scheduler; returns the local queues for the threads to take.
    pub(crate) fn stealing(id: usize, threads: usize) -> (Scheduler<R>, Vec<Worker<RawTask>>) {
        let locals: Vec<Worker<RawTask>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let stealers = locals.iter().map(Worker::stealer).collect();
        let scheduler = Scheduler {
            id,
            queues: Queues::Stealing {
                injector: Box::new(Injector::new()),
                stealers,
            },
            sleepers: Sleepers::new(),
            stop: AtomicBool::new(false),
            _runs: PhantomData,
            watches: watches(threads),
        };
        (scheduler, locals)
    }

    /// One queue, a seeded choice.
    pub(crate) fn seeded(id: usize, seed: u64) -> Scheduler<R> {
        Scheduler {
            id,
            queues: Queues::Seeded(std::sync::Mutex::new(Seeded {
                runnable: Vec::new(),
                state: seed.max(1),
            })),
            sleepers: Sleepers::new(),
            stop: AtomicBool::new(false),
            _runs: PhantomData,
            watches: watches(1),
        }
    }

    pub(crate) fn id(&self) -> usize {
        self.id
    }

    /// The number of scheduler threads.
    pub(crate) fn threads(&self) -> usize {
        self.watches.len()
    }

    /// Thread `index`'s progress, as the watchdog reads it.
    #[inline]
    pub(crate) fn watch(&self, index: usize) -> Option<&SliceWatch> {
        self.watches.get(index).map(|watch| &**watch)
    }

    /// Moves what thread `index` has queued to the injector, where the other threads take it
    /// (the watchdog, while that thread is stuck in a long slice). Its LIFO slot stays.
    pub(crate) fn evacuate(&self, index: usize) {
        let Queues::Stealing { injector, stealers } = &self.queues else {
            return;
        };
        let Some(stealer) = stealers.get(index) else {
            return;
        };
        let mut moved = false;
        loop {
            match stealer.steal() {
                Steal::Success(task) => {
                    injector.push(task);
                    moved = true;
                }
                Steal::Empty => break,
                Steal::Retry => continue,
            }
        }
        if moved {
            self.sleepers.notify_one();
        }
    }

    /// Makes a scheduler thread of the calling thread.
    pub(crate) fn enter(&self, index: usize, queue: Option<Worker<RawTask>>) {
        WORKER.with(|w| w.set((self.id, index)));
        CURRENT.with(|c| {
            *c.borrow_mut() = Some(Local {
                index,
                queue,
                tick: 0,
            });
        });
    }

    pub(crate) fn leave(&self) {
        WORKER.with(|w| w.set((0, 0)));
        LIFO.with(|lifo| lifo.set(None));
        LIFO_RUNS.with(|runs| runs.set(0));
        CURRENT.with(|c| c.borrow_mut().take());
    }

    /// Queues a process that a message or signal woke (it won `transition_to_queued`). On a
    /// scheduler thread of this runtime it takes the LIFO slot; the process it displaces goes
    /// to the back of the local queue.
    #[inline]
    pub(crate) fn schedule(&self, task: Task<R>) {
        self.push(task.into_raw(), Push::Woken);
    }

    /// Queues a process that used up its slice (or was woken while running) at the back.
    pub(crate) fn schedule_yield(&self, task: Task<R>) {
        self.push(task.into_raw(), Push::Yield);
    }

    /// Queues a new process at the back.
    pub(crate) fn schedule_spawn(&self, task: Task<R>) {
        self.push(task.into_raw(), Push::Spawn);
    }

    fn push(&self, task: RawTask, kind: Push) {
        match &self.queues {
            Queues::Seeded(seeded) => {
                lock_std(seeded).runnable.push(task);
                self.sleepers.notify_one();
            }
            Queues::Stealing { injector, .. } => {
                let on_this_runtime = WORKER.with(Cell::get).0 == self.id;
                // Woken on one of our threads: the LIFO slot. As in tokio, only a process it
                // displaces (now at the back of the local queue) is work worth a wake-up: the
                // slot itself is run by this thread next.
                let task = if kind == Push::Woken && on_this_runtime {
                    match LIFO.with(|lifo| lifo.replace(Some(task))) {
                        None => return,
                        Some(displaced) => displaced,
                    }
                } else {
                    task
                };
                let mut task = Some(task);
                let surplus = if on_this_runtime {
                    CURRENT.with(|c| {
                        let current = c.try_borrow().ok()?;
                        let queue = current.as_ref()?.queue.as_ref()?;
                        queue.push(task.take().expect("pushed once"));
                        // A burst of spawns is worth another thread only once it is a real
                        // backlog: waking one costs a futex call here and moves every process
                        // it steals to a cold cache.
                        Some(match kind {
                            Push::Woken | Push::Yield => true,
                            Push::Spawn => queue.len() >= BACKLOG_WORTH_A_WAKE,
                        })
                    })
                } else {
                    None
                };
                match (task, surplus) {
                    (None, Some(true)) => self.sleepers.notify_one(),
                    (None, _) => {}
                    (Some(task), _) => {
                        injector.push(task);
                        self.sleepers.notify_one();
                    }
                }
            }
        }
    }

    /// The seam: which process the calling scheduler thread runs next.
    #[inline]
    pub(crate) fn next_task(&self) -> Option<Task<R>> {
        // SAFETY: every `RawTask` in this scheduler's queues, and in the LIFO slot and local
        // queue of a thread that entered it, came from `Task::<R>::into_raw` (see the type's
        // docs); only this scheduler's own threads call `next_task`.
        self.next_raw().map(|raw| unsafe { Task::from_raw(raw) })
    }

    fn next_raw(&self) -> Option<RawTask> {
        match &self.queues {
            Queues::Seeded(seeded) => {
                let mut seeded = lock_std(seeded);
                if seeded.runnable.is_empty() {
                    return None;
                }
                let at = (seeded.next() % seeded.runnable.len() as u64) as usize;
                Some(seeded.runnable.swap_remove(at))
            }
            Queues::Stealing { injector, stealers } => {
                let lifo = LIFO.with(Cell::take);
                if let Some(task) = lifo {
                    let runs = LIFO_RUNS.with(Cell::get);
                    if runs < MAX_LIFO_RUNS {
                        LIFO_RUNS.with(|r| r.set(runs + 1));
                        return Some(task);
                    }
                    return self.next_after_lifo(Some(task), injector, stealers);
                }
                self.next_after_lifo(None, injector, stealers)
            }
        }
    }

    /// The queues' turn: the LIFO slot is empty, or its process (`lifo`) used up the cap.
    fn next_after_lifo(
        &self,
        lifo: Option<RawTask>,
        injector: &Injector<RawTask>,
        stealers: &[Stealer<RawTask>],
    ) -> Option<RawTask> {
        LIFO_RUNS.with(|r| r.set(0));
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            let local = current.as_mut()?;
            let queue = local.queue.as_ref()?;
            local.tick = local.tick.wrapping_add(1);
            if let Some(task) = lifo {
                // Over the cap, the slot yields to the queue; with nothing else queued
                // here (and no look at the injector due), it would come straight back.
                if queue.is_empty() && local.tick % 61 != 0 {
                    return Some(task);
                }
                queue.push(task);
            }
            // Now and then look at the injector first, so pushes from outside never starve.
            if local.tick % 61 == 0
                && let Some(task) = steal_into(queue, injector)
            {
                return Some(task);
            }
            queue
                .pop()
                .or_else(|| steal_into(queue, injector))
                .or_else(|| {
                    let n = stealers.len();
                    (1..n)
                        .map(|k| &stealers[(local.index + k) % n])
                        .find_map(|s| steal_from(queue, s))
                })
        })
    }

    /// Whether any queue holds work (for the park protocol).
    pub(crate) fn has_work(&self) -> bool {
        match &self.queues {
            Queues::Seeded(seeded) => !lock_std(seeded).runnable.is_empty(),
            Queues::Stealing { injector, stealers } => {
                !injector.is_empty() || stealers.iter().any(|s| !s.is_empty())
            }
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.sleepers.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Drops whatever is still queued (after the threads have stopped).
    pub(crate) fn drain(&self) {
        match &self.queues {
            Queues::Seeded(seeded) => lock_std(seeded).runnable.clear(),
            Queues::Stealing { injector, .. } => while !injector.steal().is_empty() {},
        }
    }
}

fn lock_std<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn steal_into(queue: &Worker<RawTask>, injector: &Injector<RawTask>) -> Option<RawTask> {
    loop {
        match injector.steal_batch_and_pop(queue) {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}

fn steal_from(queue: &Worker<RawTask>, stealer: &Stealer<RawTask>) -> Option<RawTask> {
    loop {
        match stealer.steal_batch_and_pop(queue) {
            Steal::Success(task) => return Some(task),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}
