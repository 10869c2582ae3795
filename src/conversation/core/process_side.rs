//! What the conversation process does to the shared state: attach an incarnation, forward
//! requests, apply the crash policy to a participant's exit, the deadline, and teardown.

use std::sync::Arc;
use std::time::Duration;

use super::{AfterExit, Attach, Core, Member, State};
use crate::conversation::ParticipantExit;
use crate::conversation::actor::ConvMsg;
use crate::conversation::config::{Crash, CrashPolicy};
use crate::conversation::envelope::{Envelope, MessageId};
use crate::conversation::error::ConversationError;
use crate::conversation::participant::ParticipantRequest;
use crate::conversation::phase::{LogEntry, Phase};
use crate::{Addr, ExitReason, Pid};

impl Core {
    /// A new incarnation of the process starts: it becomes the conversation's process.
    pub(crate) fn attach(&self, addr: Addr<ConvMsg>, now: Duration) -> Attach {
        let mut state = self.lock();
        if state.phase.is_final() {
            // Killed while tearing down after the end: this incarnation finishes the teardown
            // (the participants take a stop from the current process only).
            if state.addr.is_some() {
                state.addr = Some(addr);
            }
            return Attach {
                links: Vec::new(),
                deadline: None,
                closing: false,
                ended: true,
            };
        }
        state.incarnations += 1;
        if state.incarnations == 1 {
            state.deadline = self.timeout.map(|timeout| now + timeout);
        } else {
            state.log.push(LogEntry::Restarted {
                pid: addr.pid(),
                at: now,
            });
        }
        state.addr = Some(addr);
        // Whatever was queued while there was no process is forwarded by the first kick.
        state.kicked = false;
        Attach {
            links: state
                .members
                .iter()
                .filter(|m| m.alive())
                .map(|m| m.addr.pid())
                .collect(),
            deadline: state.deadline,
            closing: state.phase == Phase::Completing,
            ended: false,
        }
    }

    /// Takes the queued requests and assigns each to the first live participant.
    pub(crate) fn forward(
        self: &Arc<Self>,
        now: Duration,
    ) -> Vec<(Addr<ParticipantRequest>, ParticipantRequest)> {
        let mut state = self.lock();
        state.kicked = false;
        if state.phase.is_final() {
            state.queue.clear();
            return Vec::new();
        }
        self.forward_locked(&mut state, now)
    }

    /// A linked process exited (a trapped exit signal from `pid`).
    pub(crate) fn participant_exited(
        self: &Arc<Self>,
        pid: Pid,
        reason: &ExitReason,
        now: Duration,
    ) -> AfterExit {
        let mut state = self.lock();
        if state.phase.is_final() {
            return AfterExit::Ignored;
        }
        // Identity, not position: only a live member with this very pid counts.
        let Some(member) = state
            .members
            .iter_mut()
            .find(|m| m.addr.pid() == pid && m.alive())
        else {
            return AfterExit::Ignored;
        };
        member.exit = Some((now, reason.clone()));
        state.log.push(LogEntry::ParticipantCrashed {
            pid,
            reason: reason.clone(),
            at: now,
        });
        let exit = ParticipantExit {
            participant: pid,
            reason: reason.clone(),
            at: now,
        };
        state.notifiers.retain(|(watched, slot)| {
            if *watched == pid {
                slot.fill(Ok(exit.clone()));
                false
            } else {
                true
            }
        });
        let crashed = ConversationError::ParticipantCrashed {
            participant: pid,
            reason: reason.clone(),
        };
        match &self.policy {
            CrashPolicy::Fail => {
                state.fail(crashed);
                AfterExit::Failed
            }
            CrashPolicy::RouteToNext => {
                let Some(next) = state.first_alive() else {
                    state.fail(crashed);
                    return AfterExit::Failed;
                };
                let moved = state.take_outstanding(pid);
                let sends = moved
                    .into_iter()
                    .map(|request| {
                        state.log.push(LogEntry::Rerouted {
                            message_id: request.message_id,
                            from: pid,
                            to: next.pid(),
                            at: now,
                        });
                        state.assign(self, next, request, now)
                    })
                    .collect();
                AfterExit::Continue(sends)
            }
            CrashPolicy::Compensate(callback) => {
                let unanswered = state.take_outstanding(pid);
                state.log.push(LogEntry::Compensated {
                    pid,
                    requests: unanswered.iter().map(|r| r.message_id).collect(),
                    at: now,
                });
                AfterExit::Compensate(
                    Arc::clone(callback),
                    Crash {
                        participant: pid,
                        reason: reason.clone(),
                        unanswered,
                    },
                )
            }
        }
    }

    /// The compensation callback for `crash` returned `replies` (or panicked: `Err`).
    pub(crate) fn compensated(
        self: &Arc<Self>,
        crash: &Crash,
        replies: Result<Vec<Envelope>, String>,
        now: Duration,
    ) -> AfterExit {
        let mut state = self.lock();
        if state.phase.is_final() {
            return AfterExit::Ignored;
        }
        let replies = match replies {
            Ok(replies) => replies,
            Err(message) => {
                state.fail(ConversationError::CompensationPanicked(message));
                return AfterExit::Failed;
            }
        };
        for reply in replies {
            state.log.push(LogEntry::Received {
                from: crash.participant,
                envelope: reply.clone(),
                at: now,
            });
            let parent = reply.causal.map(|c| c.parent_id);
            state.route_reply(reply, parent);
        }
        // An ask whose request went unanswered would otherwise wait for its whole timeout.
        let crashed = ConversationError::ParticipantCrashed {
            participant: crash.participant,
            reason: crash.reason.clone(),
        };
        let lost: Vec<MessageId> = crash.unanswered.iter().map(|r| r.message_id).collect();
        state.waiters.retain(|waiter| match waiter.request {
            Some(request) if lost.contains(&request) => {
                waiter.slot.fill(Err(crashed.clone()));
                false
            }
            _ => true,
        });
        if state.members.iter().any(Member::alive) {
            // Requests queued while the callback ran go to the next participant.
            let sends = self.forward_locked(&mut state, now);
            AfterExit::Continue(sends)
        } else {
            state.fail(crashed);
            AfterExit::Failed
        }
    }

    fn forward_locked(
        self: &Arc<Self>,
        state: &mut State,
        now: Duration,
    ) -> Vec<(Addr<ParticipantRequest>, ParticipantRequest)> {
        let Some(target) = state.first_alive() else {
            return Vec::new();
        };
        let queued: Vec<Envelope> = state.queue.drain(..).collect();
        queued
            .into_iter()
            .map(|request| state.assign(self, target, request, now))
            .collect()
    }

    /// The conversation's timeout passed (if it has): fails it; `true` if it did.
    pub(crate) fn deadline_passed(&self, now: Duration) -> bool {
        let mut state = self.lock();
        match state.deadline {
            Some(deadline) if now >= deadline && !state.phase.is_final() => {
                state.fail(ConversationError::ConversationTimeout);
                true
            }
            _ => false,
        }
    }

    /// Fails the conversation (if it has not ended) with `error`.
    pub(crate) fn fail(&self, error: ConversationError) {
        self.lock().fail(error);
    }

    /// Whether the conversation is closing (the process then tears down).
    pub(crate) fn closing(&self) -> bool {
        self.lock().phase == Phase::Completing
    }

    /// The participants to stop (owned, alive) and to unlink (the others).
    pub(crate) fn members_for_teardown(&self) -> (Vec<Pid>, Vec<Pid>) {
        let state = self.lock();
        let alive = state.members.iter().filter(|m| m.alive());
        let (owned, others): (Vec<&Member>, Vec<&Member>) = alive.partition(|m| m.owned);
        (
            owned.iter().map(|m| m.addr.pid()).collect(),
            others.iter().map(|m| m.addr.pid()).collect(),
        )
    }

    /// The participants the process stopped at the end exited with `reasons`.
    pub(crate) fn stopped(&self, pids: &[Pid], reasons: Vec<ExitReason>, now: Duration) {
        let mut state = self.lock();
        for (pid, reason) in pids.iter().zip(reasons) {
            if let Some(member) = state
                .members
                .iter_mut()
                .find(|m| m.addr.pid() == *pid && m.alive())
            {
                member.exit = Some((now, reason));
            }
        }
    }

    /// The process has torn down: `Completing` becomes `Closed` (closers get the unreceived
    /// replies), the process is forgotten and the conversation leaves its supervisor's index.
    pub(crate) fn finish(&self) {
        // Out of the index first: whoever `close` wakes finds the conversation gone.
        if let Some(index) = self.index.upgrade() {
            index.remove(self.id);
        }
        let mut state = self.lock();
        if state.phase == Phase::Completing {
            state.phase = Phase::Closed;
            let unreceived: Vec<Envelope> = state.replies.drain(..).collect();
            for closer in state.closers.drain(..) {
                closer.fill(Ok(unreceived.clone()));
            }
            state.end_waits(&ConversationError::Closed);
        }
        state.addr = None;
        state.queue.clear();
        state.outstanding.clear();
        drop(state);
        self.ready.fill(());
    }
}
