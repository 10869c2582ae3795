//! Processes: the process table, mailboxes, the state word, `Ctx`, receiving and the
//! two ways to write a process (an `async` body or a [`Behaviour`]).

pub(crate) mod addr;
pub(crate) mod backpressure;
pub(crate) mod behaviour;
mod blocking;
pub(crate) mod call;
pub(crate) mod cell;
pub(crate) mod code;
pub(crate) mod context;
pub(crate) mod crash;
pub(crate) mod exit;
pub(crate) mod handle;
pub(crate) mod info;
pub(crate) mod mailbox;
pub(crate) mod outbox;
pub(crate) mod outside;
pub(crate) mod receive;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod shared;
pub(crate) mod signalling;
pub(crate) mod spawn;
pub(crate) mod spin;
pub(crate) mod status;
pub(crate) mod table;
pub(crate) mod timers;
#[cfg(feature = "tokio")]
mod tokio;
pub(crate) mod types;

#[cfg(all(test, loom))]
mod loom_tests;

pub use crate::pid::{Pid, Ref};
pub use addr::{Addr, AddrError, SendError, SpawnError};
pub use backpressure::SendWait;
pub use behaviour::{Behaviour, BehaviourKind, Handled};
pub use code::{BodyKind, IntoProcess, ProcessCode};
pub use context::Ctx;
pub use crash::{CrashReport, CrashReports, CrashSource};
pub use handle::{ExitWatch, Handle, Run};
pub use info::ProcessInfo;
pub use mailbox::Overflow;
pub use receive::{Message, Recv, RecvTimeout};
pub use registry::RegistryError;
pub(crate) use spawn::ParentRef;
pub use spawn::{MailboxConfig, SpawnOptions, Spawned};
pub use status::Status;
pub use table::MAX_PROCESSES;

pub(crate) use crate::engine::on_scheduler_thread;
