//! The heap record of one process, shared by the table, the run queues and its wakers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::mailbox::{Mail, Mailbox, Pushed};
use super::run::CodeSlot;
use super::shared::Shared;
use super::spin::SpinLock;
use super::status::ProcessState;
use crate::engine::coop::Budget;
use crate::pid::Pid;
use crate::signal::record::SignalState;
use crate::signal::rules::{self, Action, SignalKind};
use crate::signal::{Down, ExitReason, ExitSignal, MonitorRef};

/// `repr(C)`, hot fields first: a message and a slice touch the state, the mailbox, the budget
/// and the code, which then share the cache lines after the `Arc`'s counts; the signal
/// record (links, monitors, names) is used by far rarer operations and comes last.
#[repr(C)]
pub(crate) struct ProcessCell {
    pub(crate) state: ProcessState,
    /// Set (after `pending_exit`) when the process must die at its next scheduling point: the
    /// runner checks this flag without taking the signal lock.
    pub(crate) exit_pending: AtomicBool,
    /// Set when a long-queue warning was given; cleared when a send finds the mailbox under
    /// half the threshold.
    long_queue_told: AtomicBool,
    /// The reductions left in the running slice.
    pub(crate) budget: Budget,
    pub(crate) pid: Pid,
    pub(crate) mailbox: Mailbox,
    /// The process's code. Only the thread that won `transition_to_running` touches it.
    pub(crate) code: CodeSlot,
    pub(crate) reductions: AtomicU64,
    pub(crate) shared: Arc<Shared>,
    /// Which wait a lazy receive timer is for (see `timers.rs`); only the running
    /// thread writes it.
    pub(crate) wait_epoch: AtomicU32,
    /// The number of its message type (`types.rs`); fills what was padding.
    pub(crate) message_type: u32,
    pub(crate) parent: Pid,
    pub(crate) signals: SpinLock<SignalState>,
}

impl ProcessCell {
    pub(crate) fn new(
        pid: Pid,
        parent: Pid,
        mailbox: Mailbox,
        shared: Arc<Shared>,
        message_type: u32,
    ) -> Self {
        ProcessCell {
            pid,
            parent,
            state: ProcessState::new_queued(),
            mailbox,
            signals: SpinLock::new(SignalState::default()),
            exit_pending: AtomicBool::new(false),
            long_queue_told: AtomicBool::new(false),
            code: CodeSlot::empty(),
            reductions: AtomicU64::new(0),
            budget: Budget::default(),
            wait_epoch: AtomicU32::new(0),
            message_type,
            shared,
        }
    }

    /// Delivers a user message and wakes the process.
    #[inline]
    pub(crate) fn push_user(self: &Arc<Self>, envelope: Mail) -> Pushed {
        super::outbox::flush();
        self.push_user_after_flush_with(move || envelope)
    }

    /// `push_user` for a caller that has just emptied this thread's outbox, with the
    /// envelope made under the inbox lock (see `Mailbox::push_user_with`).
    #[inline(always)]
    pub(crate) fn push_user_after_flush_with(
        self: &Arc<Self>,
        make: impl FnOnce() -> Mail,
    ) -> Pushed {
        let pushed = self.mailbox.push_user_with(make);
        if let Pushed::Queued(len) = pushed {
            self.queued(len);
        }
        pushed
    }

    /// User messages were pushed outside `push_user` (a batch, a send that waited for room),
    /// leaving `len` in the inbox: as `queued`, unless the process is exiting, in which case
    /// its exit may have emptied the inbox before the push and nobody will read it: emptied
    /// again.
    pub(crate) fn delivered(self: &Arc<Self>, len: usize) {
        if self.state.status() == super::status::Status::Exiting {
            self.mailbox.clear();
        } else {
            self.queued(len);
        }
    }

    /// A user message was queued, leaving `len` in the inbox: wakes the process, and, with a
    /// long-queue threshold set, checks the length.
    #[inline(always)]
    pub(crate) fn queued(self: &Arc<Self>, len: usize) {
        self.schedule();
        if self.shared.long_queue != usize::MAX {
            self.check_long_queue(len);
        }
    }

    /// OTP's `long_message_queue` monitor: warns when the messages this process has not yet
    /// taken (in its inbox and its private queue; `inbox` is the inbox's length, known to the
    /// sender) reach the threshold, then not again until they have gone under half of it.
    #[cold]
    #[inline(never)]
    fn check_long_queue(&self, inbox: usize) {
        let threshold = self.shared.long_queue;
        // `len` may lag behind the owner by a message or two: a warning is not a bound.
        let len = self.mailbox.len().max(inbox);
        let told = self.long_queue_told.load(Ordering::Relaxed);
        if len >= threshold {
            if !told {
                self.long_queue_told.store(true, Ordering::Relaxed);
                self.shared.stats.long_queue();
                tracing::warn!(
                    pid = %self.pid,
                    len,
                    threshold,
                    "long_message_queue: a process's mailbox holds {len} messages"
                );
            }
        } else if told && len < threshold / 2 {
            self.long_queue_told.store(false, Ordering::Relaxed);
        }
    }

    /// Delivers a system message (a reply) and wakes the process. Dropped if it has exited.
    pub(crate) fn push_system(self: &Arc<Self>, envelope: Mail) {
        super::outbox::flush();
        if self.state.status() == super::status::Status::Exiting {
            return;
        }
        self.mailbox.push_system(envelope);
        self.schedule();
    }

    /// An exit signal arrives. For `SignalKind::Link` it only counts if the link still exists
    /// (an unlink that won the race means no signal); the link is consumed either way.
    pub(crate) fn signal_exit(self: &Arc<Self>, from: Pid, reason: &ExitReason, kind: SignalKind) {
        super::outbox::flush();
        let mut signals = self.signals.lock();
        if signals.exited || (kind == SignalKind::Link && !signals.remove_link(from)) {
            return;
        }
        match rules::on_exit_signal(kind, reason, from, self.pid, signals.trap_exit) {
            Action::Ignore => {}
            Action::Deliver => {
                self.mailbox.push_system(Mail::Exit(ExitSignal {
                    from,
                    reason: reason.clone(),
                }));
                drop(signals);
                self.schedule();
            }
            Action::Die(reason) => {
                if signals.set_pending_exit(reason) {
                    self.exit_pending.store(true, Ordering::Release);
                    drop(signals);
                    self.schedule();
                }
            }
        }
    }

    /// A monitor this process holds fired. Ignored if it was demonitored meanwhile.
    pub(crate) fn signal_down(
        self: &Arc<Self>,
        reference: MonitorRef,
        pid: Pid,
        reason: &ExitReason,
    ) {
        super::outbox::flush();
        let mut signals = self.signals.lock();
        if signals.exited || signals.remove_monitor(reference).is_none() {
            return;
        }
        self.mailbox.push_system(Mail::Down(Down {
            reference,
            pid,
            reason: reason.clone(),
        }));
        drop(signals);
        self.schedule();
    }

    /// Whether the process may take its next message in this slice: it has budget left and
    /// no exit signal has doomed it (a doomed process receives nothing more, as in OTP, where
    /// the signal that kills a process is handled before anything sent after it).
    #[inline]
    pub(crate) fn may_receive(&self) -> bool {
        self.budget.has_budget() && !self.exit_pending.load(Ordering::Acquire)
    }

    /// Alive and not doomed by a fatal exit signal (see `SignalState::is_doomed`).
    #[inline]
    pub(crate) fn is_alive(&self) -> bool {
        !self.exit_pending.load(Ordering::Acquire)
            && self.state.status() != super::status::Status::Exiting
    }

    /// Takes the reason this process must die with, if one arrived.
    #[inline]
    pub(crate) fn take_pending_exit(&self) -> Option<ExitReason> {
        if !self.exit_pending.load(Ordering::Acquire) {
            return None;
        }
        self.signals.lock().pending_exit.clone()
    }

    /// Only the thread running the process calls this (see `status.rs`), so a load and a
    /// store suffice.
    #[inline]
    pub(crate) fn add_reductions(&self, n: u64) {
        let total = self.reductions.load(Ordering::Relaxed) + n;
        self.reductions.store(total, Ordering::Relaxed);
    }
}

impl futures_task::ArcWake for ProcessCell {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.schedule();
    }
}
