//! What a command to a virtual actor comes to: its outcome, or why it failed.

use super::store::StoreError;
use crate::ExitReason;

/// A command's outcome: the stream's version after it, and how many events it stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The version of the actor's stream after the command (the number of its last event).
    pub version: u64,
    /// How many events the command stored (0 when it decided nothing happened).
    pub events: usize,
}

/// Why a command or query failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorError<R> {
    /// The actor refused the command ([`EventSourced::decide`](super::EventSourced::decide)):
    /// nothing was stored.
    #[error("the command was rejected")]
    Rejected(R),
    /// Another writer appended to the actor's stream first, every time, for
    /// `VirtualConfig::conflict_retries` retries: nothing was stored.
    #[error("version conflict on {actor} after {retries} retries")]
    Conflict {
        /// The actor's stream.
        actor: String,
        /// How many times the command was decided again.
        retries: u32,
    },
    /// The actor's stored events could not be read back: the activation is refused until
    /// the event is fixed or an upcast for it is written.
    #[error("cannot replay {actor} at version {version}: {reason}")]
    Replay {
        /// The actor's stream.
        actor: String,
        /// The version of the event (or snapshot) that could not be read.
        version: u64,
        /// Why.
        reason: String,
    },
    /// An event could not be serialised: nothing was stored.
    #[error("cannot serialise an event of {actor}: {reason}")]
    Encode {
        /// The actor's stream.
        actor: String,
        /// Why.
        reason: String,
    },
    /// The store failed. For an append, the events may or may not be stored (a lost
    /// connection); the activation reads the stream again before its next command.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The activation died after taking the command (its code panicked): its events may or
    /// may not be stored. The supervisor restarts the activation, which replays.
    #[error("the actor crashed handling the command: {0}")]
    Crashed(ExitReason),
    /// No reply within `VirtualConfig::call_timeout`.
    #[error("no reply in time")]
    Timeout,
    /// The virtual actors were shut down (or their supervisor gave up).
    #[error("the virtual actors are not running")]
    Down,
}
