//! What can go wrong in a conversation.

use crate::{ExitReason, Pid};

use super::phase::Phase;

/// Why a conversation operation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    /// A participant exited and the crash policy failed the conversation (under `Fail`, or when
    /// no live participant is left). Pending receives return this at once.
    #[error("participant {participant} exited: {reason}")]
    ParticipantCrashed {
        /// The participant.
        participant: Pid,
        /// Its exit reason.
        reason: ExitReason,
    },
    /// The conversation's own timeout passed; the conversation failed.
    #[error("the conversation timed out")]
    ConversationTimeout,
    /// A receive (or the receive of an `ask`) waited its whole timeout; the conversation goes
    /// on and a later reply goes to a later receive.
    #[error("no reply within the receive timeout")]
    ReceiveTimeout,
    /// The conversation was closed.
    #[error("the conversation is closed")]
    Closed,
    /// The conversation is closing: it takes no new requests.
    #[error("the conversation is closing")]
    Closing,
    /// The conversation's supervisor stopped before the conversation ended.
    #[error("the conversation supervisor stopped")]
    SupervisorDown,
    /// The compensation callback panicked; the conversation failed.
    #[error("the compensation callback panicked: {0}")]
    CompensationPanicked(String),
    /// A phase change the lifecycle does not allow.
    #[error("illegal phase transition from {from:?} to {to:?}")]
    IllegalTransition {
        /// The phase the conversation was in.
        from: Phase,
        /// The phase asked for.
        to: Phase,
    },
    /// `ChannelMode::Durable` needs a durable store, which baobab does not have yet.
    #[error("durable conversations need a durable store, which this build does not have")]
    DurableUnsupported,
    /// A conversation needs at least one participant.
    #[error("a conversation needs at least one participant")]
    NoParticipants,
    /// The pid is not a participant of this conversation.
    #[error("{0} is not a participant of this conversation")]
    NotParticipant(Pid),
    /// The conversation process could not be started.
    #[error("could not start the conversation: {0}")]
    Spawn(String),
}
