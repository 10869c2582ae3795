//! # baobab
//!
//! Erlang/OTP's way of building fault-tolerant software, inside one Rust process: a fixed pool
//! of scheduler threads runs many lightweight processes, each with its own mailbox; processes
//! link and monitor each other, trap exits, and exit with reasons that propagate as OTP
//! defines.
//!
//! ```
//! use baobab::{ExitReason, Message, Runtime};
//!
//! let rt = Runtime::new();
//! let reason = rt.block_on(|mut ctx: baobab::Ctx<()>| async move {
//!     ctx.trap_exit(true);
//!     ctx.spawn_link(|_ctx: baobab::Ctx<()>| async move {
//!         let crash = true;
//!         if crash { panic!("worker crashed") }
//!     }).unwrap();
//!     match ctx.recv().await {
//!         Message::Exit(signal) => signal.reason,
//!         _ => unreachable!(),
//!     }
//! });
//! assert_eq!(reason.unwrap(), ExitReason::Panic("worker crashed".into()));
//! ```
//!
//! The layers, bottom up: signals ([`ExitReason`], links, monitors); the engine (scheduler
//! threads, run queues, reductions, the blocking pool, the [`Clock`] and its timers);
//! processes ([`Pid`], [`Ctx`], [`Behaviour`], mailboxes, registered names, [`Handle`]); the
//! [`Runtime`] that starts them; `server` (gen_server-style calls), [`supervisor`] (OTP's
//! supervision trees), [`conversation`] (request/reply envelopes forwarded to participants
//! under a crash policy), [`persistence`] (event-sourced virtual actors and their stores),
//! [`jobs`] (the job model, stores and the supervised worker pool),
//! `script` (the sandboxed Rhai engine, feature `rhai`) and `bridge` (jobs in Redis, feature
//! `redis`). See `docs/architecture.md`, `docs/semantics.md`, `docs/supervision.md` and
//! `docs/conversations.md`, `docs/persistence.md`, `docs/jobs.md` and `docs/wire-format.md`.

#![warn(missing_docs)]

#[cfg(feature = "redis")]
pub mod bridge;
pub mod conversation;
pub(crate) mod engine;
pub mod jobs;
pub(crate) mod loom;
pub mod persistence;
pub(crate) mod pid;
pub(crate) mod process;
pub(crate) mod runtime;
#[cfg(feature = "rhai")]
pub mod script;
pub mod server;
pub(crate) mod signal;
pub mod supervisor;

pub use engine::{Clock, ManualClock, RuntimeStats, TimerRef};
pub use process::RegistryError;
pub use process::{
    Addr, AddrError, Behaviour, BehaviourKind, BodyKind, Ctx, ExitWatch, Handle, Handled,
    IntoProcess, MAX_PROCESSES, MailboxConfig, Message, Overflow, Pid, ProcessCode, ProcessInfo,
    Recv, RecvTimeout, Ref, Run, SendError, SendWait, SpawnError, SpawnOptions, Spawned, Status,
};
pub use process::{CrashReport, CrashReports, CrashSource};
pub use runtime::{Builder, Runtime};
pub use signal::{Down, ExitReason, ExitSignal, MonitorRef};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// `docs/conversations.md`'s example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../docs/conversations.md")]
pub struct ConversationDoctests;

/// The guide for Erlang/OTP users, its examples compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide-erlang.md")]
pub struct GuideErlangDoctests;

/// The guide for ractor, kameo and actix users, its examples compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide-actors.md")]
pub struct GuideActorsDoctests;

/// `docs/supervision.md`'s example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../docs/supervision.md")]
pub struct SupervisionDoctests;
