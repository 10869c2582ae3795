//! How a conversation is set up: its participants, timeout, channel mode and crash policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::envelope::Envelope;
use super::participant::ParticipantRequest;
use crate::{Addr, ExitReason, Pid};

/// Whether a conversation's log outlives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChannelMode {
    /// In memory only: the state survives a restart of the conversation process, not of the
    /// OS process.
    Ephemeral,
    /// Kept in a durable store. baobab has no durable store yet: spawning a durable
    /// conversation fails with [`ConversationError::DurableUnsupported`](super::ConversationError::DurableUnsupported).
    Durable,
}

/// What the compensation callback of [`CrashPolicy::Compensate`] is given.
#[derive(Clone, Debug)]
pub struct Crash {
    /// The participant that exited.
    pub participant: Pid,
    /// Its exit reason.
    pub reason: ExitReason,
    /// The requests it had been sent and had not answered, oldest first.
    pub unanswered: Vec<Envelope>,
}

/// The callback of [`CrashPolicy::Compensate`]: it returns replies to queue in the
/// conversation (for example "cancelled" answers to the unanswered requests; a reply made with
/// [`Envelope::reply`] goes to the `ask` that waits for its parent).
pub type Compensation = Arc<dyn Fn(&Crash) -> Vec<Envelope> + Send + Sync>;

/// What a conversation does when a participant exits. There is no default: choose.
#[derive(Clone)]
pub enum CrashPolicy {
    /// Fail the conversation at once: pending receives return
    /// [`ParticipantCrashed`](super::ConversationError::ParticipantCrashed) immediately.
    Fail,
    /// Send the crashed participant's unanswered requests, and later ones, to the next live
    /// participant; fail when none is left.
    RouteToNext,
    /// Run the callback with the crashed participant's unanswered requests, queue the replies it
    /// returns, then go on with the next live participant; fail when none is left. Pending
    /// `ask`s whose request the callback did not answer return `ParticipantCrashed` at once.
    Compensate(Compensation),
}

impl CrashPolicy {
    /// `Compensate` with `callback`.
    pub fn compensate(callback: impl Fn(&Crash) -> Vec<Envelope> + Send + Sync + 'static) -> Self {
        CrashPolicy::Compensate(Arc::new(callback))
    }
}

impl fmt::Debug for CrashPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashPolicy::Fail => write!(f, "Fail"),
            CrashPolicy::RouteToNext => write!(f, "RouteToNext"),
            CrashPolicy::Compensate(_) => write!(f, "Compensate(..)"),
        }
    }
}

/// A conversation's set-up.
///
/// ```
/// use std::time::Duration;
/// use baobab::conversation::{ChannelMode, ConversationConfig, CrashPolicy};
///
/// let config = ConversationConfig::new(
///     Vec::new(),
///     Some(Duration::from_secs(30)),
///     ChannelMode::Ephemeral,
///     CrashPolicy::RouteToNext,
/// );
/// assert!(config.participants.is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct ConversationConfig {
    /// The participant processes, in routing order: requests go to the first live one. Each
    /// is a process whose mailbox takes [`ParticipantRequest`]s (see
    /// [`ParticipantRequest::reply`]). The conversation links to them: one that must outlive a
    /// crash of the conversation process traps exits.
    pub participants: Vec<Addr<ParticipantRequest>>,
    /// How long the conversation may live from its spawn; when it passes, the conversation
    /// fails with [`ConversationTimeout`](super::ConversationError::ConversationTimeout).
    pub timeout: Option<Duration>,
    /// Ephemeral or durable.
    pub mode: ChannelMode,
    /// What a participant's exit does.
    pub on_crash: CrashPolicy,
}

impl ConversationConfig {
    /// A configuration.
    pub fn new(
        participants: Vec<Addr<ParticipantRequest>>,
        timeout: Option<Duration>,
        mode: ChannelMode,
        on_crash: CrashPolicy,
    ) -> Self {
        ConversationConfig {
            participants,
            timeout,
            mode,
            on_crash,
        }
    }
}

/// A conversation's id, unique within its runtime's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConversationId(pub(crate) u64);

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conversation-{}", self.0)
    }
}
