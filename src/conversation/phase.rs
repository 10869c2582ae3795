//! A conversation's lifecycle phases and what [`query_state`] reports: participants' health and
//! the context log.
//!
//! [`query_state`]: super::ConversationHandle::query_state

use std::time::Duration;

use super::envelope::{Envelope, MessageId};
use super::error::ConversationError;
use super::{ChannelMode, ConversationId};
use crate::{ExitReason, Pid};

/// Where a conversation is in its life.
///
/// `Created → Active → Completing → Closed`, and any phase but `Closed` → `Failed`.
/// `Created → Completing` is allowed too (closing a conversation that never sent anything).
/// `Closed` and `Failed` are final.
///
/// ```
/// use baobab::conversation::Phase;
///
/// assert_eq!(Phase::Created.transition(Phase::Active), Ok(Phase::Active));
/// assert!(Phase::Closed.transition(Phase::Active).is_err());
/// assert!(Phase::Active.transition(Phase::Created).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Spawned; nothing sent yet.
    Created,
    /// At least one request sent.
    Active,
    /// Closing: no new requests; participants are being stopped.
    Completing,
    /// Closed by its user. Final.
    Closed,
    /// Failed (participant crash under its policy, timeout, supervisor stop). Final.
    Failed,
}

impl Phase {
    /// Whether the lifecycle allows going from `self` to `to`. Staying in the same phase is not
    /// a transition.
    pub fn can_become(self, to: Phase) -> bool {
        use Phase::*;
        matches!(
            (self, to),
            (Created, Active)
                | (Created, Completing)
                | (Active, Completing)
                | (Completing, Closed)
                | (Created | Active | Completing, Failed)
        )
    }

    /// `to` if the lifecycle allows it, else [`ConversationError::IllegalTransition`].
    pub fn transition(self, to: Phase) -> Result<Phase, ConversationError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(ConversationError::IllegalTransition { from: self, to })
        }
    }

    /// `Closed` or `Failed`.
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Closed | Phase::Failed)
    }
}

/// One participant's health as the conversation last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantHealth {
    /// The participant.
    pub pid: Pid,
    /// Whether it is alive, as far as the conversation knows (no exit signal from it yet, and
    /// not stopped by the conversation's end).
    pub alive: bool,
    /// When its exit signal arrived (runtime clock), if it did.
    pub exited_at: Option<Duration>,
    /// Its exit reason, if it exited.
    pub reason: Option<ExitReason>,
    /// Whether the conversation supervisor spawned it (it then stops with the conversation).
    pub owned: bool,
}

/// One entry of the context log. Times are on the runtime clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEntry {
    /// A request was forwarded to a participant.
    Sent {
        /// The participant.
        to: Pid,
        /// The request.
        envelope: Envelope,
        /// When.
        at: Duration,
    },
    /// A reply arrived from a participant (or from the compensation callback).
    Received {
        /// The participant (for a compensation, the crashed one).
        from: Pid,
        /// The reply.
        envelope: Envelope,
        /// When.
        at: Duration,
    },
    /// A participant exited.
    ParticipantCrashed {
        /// The participant.
        pid: Pid,
        /// Its reason.
        reason: ExitReason,
        /// When.
        at: Duration,
    },
    /// `RouteToNext` moved a crashed participant's request to the next one.
    Rerouted {
        /// The request.
        message_id: MessageId,
        /// The crashed participant.
        from: Pid,
        /// The participant that takes over.
        to: Pid,
        /// When.
        at: Duration,
    },
    /// `Compensate` ran the callback for a crashed participant's unanswered requests.
    Compensated {
        /// The crashed participant.
        pid: Pid,
        /// The requests it had not answered.
        requests: Vec<MessageId>,
        /// When.
        at: Duration,
    },
    /// The conversation process was restarted by its supervisor, with its state.
    Restarted {
        /// The new process.
        pid: Pid,
        /// When.
        at: Duration,
    },
}

/// A snapshot of a conversation, from [`query_state`](super::ConversationHandle::query_state).
#[derive(Clone, Debug)]
pub struct ConversationState {
    /// The conversation.
    pub id: ConversationId,
    /// Its phase.
    pub phase: Phase,
    /// Its current process, while it has one.
    pub pid: Option<Pid>,
    /// How many times its supervisor restarted it.
    pub restarts: u32,
    /// Its channel mode.
    pub mode: ChannelMode,
    /// Its participants, in routing order.
    pub participants: Vec<ParticipantHealth>,
    /// What was sent, received and crashed, oldest first: the newest entries, up to the
    /// supervisor's log limit.
    pub log: Vec<LogEntry>,
    /// How many older entries the log let go to stay within its limit.
    pub log_dropped: u64,
    /// Replies waiting to be received.
    pub pending_replies: usize,
    /// Receives (and asks) waiting for a reply.
    pub waiting_receives: usize,
    /// Requests forwarded and not answered yet.
    pub unanswered: usize,
    /// Why it failed, if it did.
    pub failure: Option<ConversationError>,
}

#[cfg(test)]
mod tests {
    use super::Phase::{self, *};

    const ALL: [Phase; 5] = [Created, Active, Completing, Closed, Failed];

    #[test]
    fn the_lifecycle_allows_exactly_its_arrows() {
        let allowed = [
            (Created, Active),
            (Created, Completing),
            (Active, Completing),
            (Completing, Closed),
            (Created, Failed),
            (Active, Failed),
            (Completing, Failed),
        ];
        for from in ALL {
            for to in ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from:?} -> {to:?}");
                assert_eq!(from.transition(to).is_ok(), expected);
            }
        }
    }
}
