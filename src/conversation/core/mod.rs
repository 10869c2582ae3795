//! A conversation's state, shared by its handles, its process (every incarnation of it) and its
//! participants' replies. It lives outside the process, so a restarted conversation process
//! takes up exactly where the crashed one stopped: requests not yet forwarded, requests not
//! yet answered, replies not yet received, waiting receivers, the log.
//!
//! Every change holds the one mutex; nothing here blocks or sends while holding it, except
//! filling waiter slots (which only wakes).
//!
//! This module holds the state and what handles and participants' replies do to it;
//! `process_side.rs` what the conversation process does (attach, forward, exits and the
//! crash policy, the deadline, teardown); `routing.rs` the routing of requests and replies
//! inside the locked state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tracing::debug;

use super::actor::ConvMsg;
use super::config::{ChannelMode, Compensation, ConversationConfig, Crash, CrashPolicy};
use super::envelope::{Envelope, MessageId};
use super::error::ConversationError;
use super::participant::ParticipantRequest;
use super::phase::{ConversationState, LogEntry, ParticipantHealth, Phase};
use super::slot::Slot;
use super::{ConversationId, ParticipantExit};
use crate::{Addr, ExitReason, Handle, Pid};

mod process_side;
mod routing;

pub(crate) type ReplySlot = Arc<Slot<Result<Envelope, ConversationError>>>;
pub(crate) type CloseSlot = Arc<Slot<Result<Vec<Envelope>, ConversationError>>>;
pub(crate) type ExitSlot = Arc<Slot<Result<ParticipantExit, ConversationError>>>;

/// The open conversations of one conversation supervisor.
#[derive(Default)]
pub(crate) struct Index {
    open: Mutex<HashMap<ConversationId, Arc<Core>>>,
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, HashMap<ConversationId, Arc<Core>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, core: &Arc<Core>) {
        self.lock().insert(core.id, Arc::clone(core));
    }

    pub(crate) fn remove(&self, id: ConversationId) {
        self.lock().remove(&id);
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn ids(&self) -> Vec<ConversationId> {
        let mut ids: Vec<_> = self.lock().keys().copied().collect();
        ids.sort();
        ids
    }

    /// Takes every open conversation out of the index.
    pub(crate) fn drain(&self) -> Vec<Arc<Core>> {
        self.lock().drain().map(|(_, core)| core).collect()
    }
}

pub(crate) struct Core {
    pub(crate) id: ConversationId,
    pub(crate) mode: ChannelMode,
    policy: CrashPolicy,
    timeout: Option<Duration>,
    pub(crate) handle: Handle,
    index: Weak<Index>,
    /// Filled when the first incarnation has linked to the participants (or the conversation
    /// ended first): `spawn` returns after it.
    pub(crate) ready: Slot<()>,
    state: Mutex<State>,
}

struct Member {
    addr: Addr<ParticipantRequest>,
    owned: bool,
    exit: Option<(Duration, ExitReason)>,
}

impl Member {
    fn alive(&self) -> bool {
        self.exit.is_none()
    }
}

struct Outstanding {
    seq: u64,
    participant: Pid,
    request: Envelope,
}

struct Waiter {
    slot: ReplySlot,
    /// `Some(request)` for an `ask`: it takes only the reply to its request.
    request: Option<MessageId>,
}

struct State {
    phase: Phase,
    addr: Option<Addr<ConvMsg>>,
    incarnations: u32,
    deadline: Option<Duration>,
    members: Vec<Member>,
    /// Requests the process has not forwarded yet.
    queue: VecDeque<Envelope>,
    /// Whether a `Kick` is on its way to the process.
    kicked: bool,
    outstanding: Vec<Outstanding>,
    next_seq: u64,
    replies: VecDeque<Envelope>,
    waiters: VecDeque<Waiter>,
    closers: Vec<CloseSlot>,
    notifiers: Vec<(Pid, ExitSlot)>,
    log: Log,
    failure: Option<ConversationError>,
}

/// The context log: the newest `limit` entries, and a count of the older ones let go.
struct Log {
    entries: VecDeque<LogEntry>,
    limit: usize,
    dropped: u64,
}

impl Log {
    fn new(limit: usize) -> Log {
        Log {
            entries: VecDeque::new(),
            limit,
            dropped: 0,
        }
    }

    fn push(&mut self, entry: LogEntry) {
        if self.entries.len() >= self.limit {
            if self.entries.pop_front().is_none() {
                // A limit of zero keeps nothing.
                self.dropped += 1;
                return;
            }
            self.dropped += 1;
        }
        self.entries.push_back(entry);
    }
}

/// What the process does after a participant's exit.
pub(crate) enum AfterExit {
    /// Not a live participant of this conversation (a stale or foreign signal): nothing.
    Ignored,
    /// Go on; forward these.
    Continue(Vec<(Addr<ParticipantRequest>, ParticipantRequest)>),
    /// Run the compensation callback, then report with [`Core::compensated`].
    Compensate(Compensation, Crash),
    /// The conversation failed: tear down.
    Failed,
}

/// What a new incarnation of the process starts with.
pub(crate) struct Attach {
    pub(crate) links: Vec<Pid>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) closing: bool,
    pub(crate) ended: bool,
}

impl Core {
    pub(crate) fn new(
        id: ConversationId,
        config: ConversationConfig,
        owned: &[Pid],
        handle: Handle,
        index: &Arc<Index>,
        log_limit: usize,
    ) -> Core {
        let members = config
            .participants
            .iter()
            .map(|&addr| Member {
                addr,
                owned: owned.contains(&addr.pid()),
                exit: None,
            })
            .collect();
        Core {
            id,
            mode: config.mode,
            policy: config.on_crash,
            timeout: config.timeout,
            handle,
            index: Arc::downgrade(index),
            ready: Slot::new(),
            state: Mutex::new(State {
                phase: Phase::Created,
                addr: None,
                incarnations: 0,
                deadline: None,
                members,
                queue: VecDeque::new(),
                kicked: false,
                outstanding: Vec::new(),
                next_seq: 0,
                replies: VecDeque::new(),
                waiters: VecDeque::new(),
                closers: Vec::new(),
                notifiers: Vec::new(),
                log: Log::new(log_limit),
                failure: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> Duration {
        self.handle.now()
    }

    // ---- called by handles -------------------------------------------------------------

    /// Queues a request for forwarding (and, for an `ask`, a waiter for its reply, in the same
    /// step so the reply cannot come first).
    pub(crate) fn submit(
        &self,
        request: Envelope,
        ask: Option<&ReplySlot>,
    ) -> Result<(), ConversationError> {
        let mut state = self.lock();
        state.accepting()?;
        if state.phase == Phase::Created {
            state.phase = Phase::Active;
        }
        if let Some(slot) = ask {
            state.waiters.push_back(Waiter {
                slot: Arc::clone(slot),
                request: Some(request.message_id),
            });
        }
        state.queue.push_back(request);
        let kick = if state.kicked { None } else { state.addr };
        state.kicked |= kick.is_some();
        drop(state);
        if let Some(addr) = kick {
            // A dead process (one being restarted) drops it: the next incarnation forwards the
            // queue when it starts.
            let _ = self.handle.send(&addr, ConvMsg::Kick);
        }
        Ok(())
    }

    /// Takes a queued reply, or registers `slot` as a waiter (`Ok(None)`).
    pub(crate) fn receive_or_wait(
        &self,
        slot: &ReplySlot,
    ) -> Result<Option<Envelope>, ConversationError> {
        let mut state = self.lock();
        state.accepting()?;
        if let Some(reply) = state.replies.pop_front() {
            return Ok(Some(reply));
        }
        state.waiters.push_back(Waiter {
            slot: Arc::clone(slot),
            request: None,
        });
        Ok(None)
    }

    /// A waiter gives up: `true` if it was still waiting (withdrawn now), `false` if its slot
    /// was filled meanwhile (the caller takes the value).
    pub(crate) fn withdraw(&self, slot: &ReplySlot) -> bool {
        let mut state = self.lock();
        match state
            .waiters
            .iter()
            .position(|w| Arc::ptr_eq(&w.slot, slot))
        {
            Some(index) => {
                state.waiters.remove(index);
                true
            }
            None => false,
        }
    }

    /// A reply that was handed to a receiver that went away: back to the front of the queue
    /// (or to a waiting receiver).
    pub(crate) fn put_back(&self, reply: Envelope) {
        let mut state = self.lock();
        if state.phase.is_final() {
            return;
        }
        match state.waiters.iter().position(|w| w.request.is_none()) {
            Some(index) => {
                let waiter = state.waiters.remove(index).expect("index in bounds");
                waiter.slot.fill(Ok(reply));
            }
            None => state.replies.push_front(reply),
        }
    }

    /// Starts closing: `Completing`, and `slot` gets the unreceived replies once `Closed`.
    pub(crate) fn close(&self, slot: &CloseSlot) -> Result<(), ConversationError> {
        let mut state = self.lock();
        match state.phase {
            Phase::Closed => return Err(ConversationError::Closed),
            Phase::Failed => return Err(state.failure()),
            Phase::Completing => {}
            from => state.phase = from.transition(Phase::Completing)?,
        }
        state.closers.push(Arc::clone(slot));
        let addr = state.addr;
        drop(state);
        if let Some(addr) = addr {
            let _ = self.handle.send(&addr, ConvMsg::Close);
        }
        Ok(())
    }

    pub(crate) fn pid(&self) -> Result<Pid, ConversationError> {
        let state = self.lock();
        state.accepting()?;
        // Set by the first incarnation before `spawn` returns, replaced by each restart, and
        // cleared only when the conversation ends. Between a crash and the restart it names
        // the dead process, as a registered name does in OTP.
        state
            .addr
            .map(|addr| addr.pid())
            .ok_or(ConversationError::Closed)
    }

    /// The current process, whatever the phase (`None` between a crash and its restart, and
    /// after the end).
    pub(crate) fn current_pid(&self) -> Option<Pid> {
        self.lock().addr.map(|addr| addr.pid())
    }

    pub(crate) fn on_participant_exit(&self, pid: Pid) -> Result<ExitSlot, ConversationError> {
        let mut state = self.lock();
        let member = state
            .members
            .iter()
            .find(|m| m.addr.pid() == pid)
            .ok_or(ConversationError::NotParticipant(pid))?;
        if let Some((at, reason)) = &member.exit {
            return Ok(Arc::new(Slot::filled_with(Ok(ParticipantExit {
                participant: pid,
                reason: reason.clone(),
                at: *at,
            }))));
        }
        state.accepting()?;
        let slot = Arc::new(Slot::new());
        state.notifiers.push((pid, Arc::clone(&slot)));
        Ok(slot)
    }

    pub(crate) fn snapshot(&self) -> ConversationState {
        let state = self.lock();
        ConversationState {
            id: self.id,
            phase: state.phase,
            pid: state.addr.map(|a| a.pid()),
            restarts: state.incarnations.saturating_sub(1),
            mode: self.mode,
            participants: state
                .members
                .iter()
                .map(|m| ParticipantHealth {
                    pid: m.addr.pid(),
                    alive: m.alive(),
                    exited_at: m.exit.as_ref().map(|(at, _)| *at),
                    reason: m.exit.as_ref().map(|(_, r)| r.clone()),
                    owned: m.owned,
                })
                .collect(),
            log: state.log.entries.iter().cloned().collect(),
            log_dropped: state.log.dropped,
            pending_replies: state.replies.len(),
            waiting_receives: state.waiters.len(),
            unanswered: state.outstanding.len(),
            failure: state.failure.clone(),
        }
    }

    pub(crate) fn is_final(&self) -> bool {
        self.lock().phase.is_final()
    }

    // ---- called by participants ----------------------------------------------------------

    /// A participant answered request `seq` (`None`: handled, no reply).
    pub(crate) fn deliver(&self, seq: u64, reply: Option<Envelope>) {
        let now = self.now();
        let mut state = self.lock();
        let Some(index) = state.outstanding.iter().position(|o| o.seq == seq) else {
            // Rerouted or compensated after its participant's exit, or the conversation ended.
            debug!(conversation = %self.id, seq, "late reply dropped");
            return;
        };
        let answered = state.outstanding.remove(index);
        if state.phase.is_final() {
            return;
        }
        if let Some(mut reply) = reply {
            if reply.causal.is_none() {
                reply.causal = Some(answered.request.reply_context());
            }
            state.log.push(LogEntry::Received {
                from: answered.participant,
                envelope: reply.clone(),
                at: now,
            });
            state.route_reply(reply, Some(answered.request.message_id));
        }
    }

    /// The handle's deadline for a blocking wait, from a receive timeout.
    pub(crate) fn wait_deadline(timeout: Option<Duration>) -> Option<Instant> {
        timeout.and_then(|t| Instant::now().checked_add(t))
    }
}
