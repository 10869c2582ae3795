//! Routing inside the locked state: which participant takes a request, where a reply goes,
//! and how a failure ends every wait.

use std::sync::Arc;
use std::time::Duration;

use super::{Core, Outstanding, State};
use crate::conversation::envelope::{Envelope, MessageId};
use crate::conversation::error::ConversationError;
use crate::conversation::participant::ParticipantRequest;
use crate::conversation::phase::{LogEntry, Phase};
use crate::{Addr, Pid};

impl State {
    /// The first live participant: where requests go.
    pub(super) fn first_alive(&self) -> Option<Addr<ParticipantRequest>> {
        self.members.iter().find(|m| m.alive()).map(|m| m.addr)
    }

    /// `Ok` while new requests are taken (and receives wait).
    pub(super) fn accepting(&self) -> Result<(), ConversationError> {
        match self.phase {
            Phase::Created | Phase::Active => Ok(()),
            Phase::Completing => Err(ConversationError::Closing),
            Phase::Closed => Err(ConversationError::Closed),
            Phase::Failed => Err(self.failure()),
        }
    }

    pub(super) fn failure(&self) -> ConversationError {
        self.failure.clone().unwrap_or(ConversationError::Closed)
    }

    pub(super) fn assign(
        &mut self,
        core: &Arc<Core>,
        target: Addr<ParticipantRequest>,
        request: Envelope,
        now: Duration,
    ) -> (Addr<ParticipantRequest>, ParticipantRequest) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.log.push(LogEntry::Sent {
            to: target.pid(),
            envelope: request.clone(),
            at: now,
        });
        self.outstanding.push(Outstanding {
            seq,
            participant: target.pid(),
            request: request.clone(),
        });
        (
            target,
            ParticipantRequest {
                envelope: request,
                seq,
                core: Arc::clone(core),
            },
        )
    }

    pub(super) fn take_outstanding(&mut self, pid: Pid) -> Vec<Envelope> {
        let mut taken = Vec::new();
        self.outstanding.retain(|o| {
            if o.participant == pid {
                taken.push(o.request.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// Hands a reply to the `ask` waiting for `answers`, else to the first plain receive,
    /// else queues it.
    pub(super) fn route_reply(&mut self, reply: Envelope, answers: Option<MessageId>) {
        let index = answers
            .and_then(|id| self.waiters.iter().position(|w| w.request == Some(id)))
            .or_else(|| self.waiters.iter().position(|w| w.request.is_none()));
        match index {
            Some(index) => {
                let waiter = self.waiters.remove(index).expect("index in bounds");
                waiter.slot.fill(Ok(reply));
            }
            None => self.replies.push_back(reply),
        }
    }

    pub(super) fn fail(&mut self, error: ConversationError) {
        if self.phase.is_final() {
            return;
        }
        self.phase = Phase::Failed;
        self.failure = Some(error.clone());
        for closer in self.closers.drain(..) {
            closer.fill(Err(error.clone()));
        }
        self.end_waits(&error);
    }

    /// Every waiting receive and exit notification ends with `error`.
    pub(super) fn end_waits(&mut self, error: &ConversationError) {
        for waiter in self.waiters.drain(..) {
            waiter.slot.fill(Err(error.clone()));
        }
        for (_, slot) in self.notifiers.drain(..) {
            slot.fill(Err(error.clone()));
        }
    }
}
