//! The engine: a fixed pool of scheduler threads with run queues, stealing and parking, the
//! reductions budget, a blocking pool, a clock with its timer heap, and per-thread counters.
//!
//! The engine is generic over the runnables it queues ([`Schedulable`](task::Schedulable);
//! type-erased inside the queues, see `task.rs`) and fires timer actions it does not look
//! into: it never names a process, a mailbox or a `Ctx`. The process layer above it
//! (`crate::process`) supplies the runnables, the timer actions and the `Host` hooks a
//! scheduler thread calls; the `Runtime` facade (`crate::runtime`) starts the threads.

pub(crate) mod blocking;
pub(crate) mod clock;
pub(crate) mod coop;
pub(crate) mod park;
pub(crate) mod scheduler;
pub(crate) mod stats;
pub(crate) mod task;
pub(crate) mod timer;
pub(crate) mod watchdog;
pub(crate) mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

pub use clock::{Clock, ManualClock};
pub use stats::RuntimeStats;
pub use timer::TimerRef;

pub(crate) use scheduler::on_scheduler_thread;
