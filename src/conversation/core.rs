//! A conversation's state, shared by its handles, its process (every incarnation of it) and its
//! participants' replies. It lives outside the process, so a restarted conversation process
//! takes up exactly where the crashed one stopped: requests not yet forwarded, requests not
//! yet answered, replies not yet received, waiting receivers, the log.
//!
//! Every change holds the one mutex; nothing here blocks or sends while holding it, except
//! filling waiter slots (which only wakes).

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

    // ---- called by the conversation process ----------------------------------------------

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

    /// The handle's deadline for a blocking wait, from a receive timeout.
    pub(crate) fn wait_deadline(timeout: Option<Duration>) -> Option<Instant> {
        timeout.and_then(|t| Instant::now().checked_add(t))
    }
}

impl State {
    /// The first live participant: where requests go.
    fn first_alive(&self) -> Option<Addr<ParticipantRequest>> {
        self.members.iter().find(|m| m.alive()).map(|m| m.addr)
    }

    /// `Ok` while new requests are taken (and receives wait).
    fn accepting(&self) -> Result<(), ConversationError> {
        match self.phase {
            Phase::Created | Phase::Active => Ok(()),
            Phase::Completing => Err(ConversationError::Closing),
            Phase::Closed => Err(ConversationError::Closed),
            Phase::Failed => Err(self.failure()),
        }
    }

    fn failure(&self) -> ConversationError {
        self.failure.clone().unwrap_or(ConversationError::Closed)
    }

    fn assign(
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

    fn take_outstanding(&mut self, pid: Pid) -> Vec<Envelope> {
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
    fn route_reply(&mut self, reply: Envelope, answers: Option<MessageId>) {
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

    fn fail(&mut self, error: ConversationError) {
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
    fn end_waits(&mut self, error: &ConversationError) {
        for waiter in self.waiters.drain(..) {
            waiter.slot.fill(Err(error.clone()));
        }
        for (_, slot) in self.notifiers.drain(..) {
            slot.fill(Err(error.clone()));
        }
    }
}
