//! Event-sourced virtual actors: an actor's state is the fold of its stored events.
//!
//! - The model: [`EventSourced`] (commands decided against the state yield events; `apply`
//!   folds an event into the state, the only way it changes), with schema versions and
//!   upcasting for events and snapshots written by older code.
//! - The stores: one trait, [`EventStore`], with optimistic concurrency (every append states
//!   the version it expects), and [`MemoryStore`] and the durable [`FileStore`].
//! - The actors: [`VirtualActors`] activates an actor on its first command (its latest
//!   snapshot, then the events after it), keeps one activation per id, handles its commands
//!   one at a time, passivates it when idle, and restarts it under a supervisor when it
//!   crashes; on a version conflict it catches up and decides again.
//! - Across runtimes (feature `nats`): `VirtualActors::start_clustered` shares the ids
//!   with every runtime connected to one NATS server, one live activation per id among
//!   them, held by a lease with a TTL; a command from any runtime is routed to it.
//!
//! See `docs/persistence.md` for the lifecycle and what is guaranteed on a crash.

/// Locks a mutex of this module, ignoring poisoning: no user code runs while one is held,
/// so a poisoned lock still guards consistent data.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

mod activation;
mod actors;
#[cfg(feature = "nats")]
pub mod cluster;
mod model;
mod outcome;
mod placement;
pub mod store;

pub use actors::{VirtualActors, VirtualConfig};
#[cfg(feature = "nats")]
pub use cluster::{Cluster, ClusterConfig};
pub use model::EventSourced;
pub use outcome::{ActorError, Committed};
pub use store::{
    EventRecord, EventStore, FileStore, FileStoreConfig, Fsync, MemoryStore, NewEvent, Pending,
    Snapshot, StoreError, StreamId,
};
#[cfg(feature = "nats")]
pub use store::{NatsStore, NatsStoreConfig};
