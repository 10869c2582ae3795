//! The operations between processes, shared by `Ctx` (inside) and `Handle` (outside):
//! send, exit, link, unlink, monitor, demonitor.
//!
//! Link and unlink take both processes' signal locks, lower pid first, so a link races
//! cleanly with either side's exit: it lands before the exit (which then signals it) or sees
//! `exited` (and the caller gets `noproc`).

use std::sync::Arc;

use super::addr::SendError;
use super::cell::ProcessCell;
use super::mailbox::{Mail, Pushed};
use super::shared::Shared;
use crate::pid::Pid;
use crate::signal::record::Watcher;
use crate::signal::rules::SignalKind;
use crate::signal::{ExitReason, MonitorRef};

impl Shared {
    /// Sends an envelope. Dead pids drop it (counted); a full `Reject` mailbox is an error.
    pub(crate) fn send(&self, to: Pid, envelope: Mail) -> Result<(), SendError> {
        match self.table.with(to, |cell| cell.push_user(envelope)) {
            Some(pushed) => self.count_push(to, pushed),
            None => {
                self.stats.dropped();
                Ok(())
            }
        }
    }

    #[inline(always)]
    pub(crate) fn count_push(&self, to: Pid, pushed: Pushed) -> Result<(), SendError> {
        match pushed {
            Pushed::Queued(_) => {
                self.stats.sent();
                Ok(())
            }
            Pushed::Dropped => {
                self.stats.dropped();
                Ok(())
            }
            Pushed::Rejected => Err(SendError::MailboxFull(to)),
        }
    }

    /// Whether `pid` is alive: in the table and not doomed by a fatal exit signal, so that
    /// `exit(pid, kill)` followed by `is_alive(pid)` says `false`, as in OTP.
    pub(crate) fn is_alive(&self, pid: Pid) -> bool {
        self.table
            .with(pid, |cell| cell.is_alive())
            .unwrap_or(false)
    }

    /// `exit(target, reason)` sent by `from`.
    pub(crate) fn exit(&self, from: Pid, target: Pid, reason: ExitReason) {
        if let Some(cell) = self.table.get(target) {
            cell.signal_exit(from, &reason, SignalKind::Exit);
        }
    }

    /// Stops `target` with `reason` whatever its trap_exit (runtime shutdown).
    pub(crate) fn force_exit(&self, target: &Arc<ProcessCell>, reason: ExitReason) {
        target.signal_exit(Pid::EXTERNAL, &reason, SignalKind::Forced);
    }

    /// Links `me` and `other`. Returns `false` if `other` is dead.
    pub(crate) fn link(&self, me: &Arc<ProcessCell>, other: Pid) -> bool {
        if other == me.pid {
            return true;
        }
        let Some(them) = self.table.get(other) else {
            return false;
        };
        let (first, second) = if me.pid < other {
            (me, &them)
        } else {
            (&them, me)
        };
        let mut a = first.signals.lock();
        let mut b = second.signals.lock();
        // The caller is running, so only the other side can be dead or doomed.
        let other_doomed = if first.pid == other {
            a.is_doomed()
        } else {
            b.is_doomed()
        };
        if other_doomed {
            return false;
        }
        a.add_link(second.pid);
        b.add_link(first.pid);
        true
    }

    pub(crate) fn unlink(&self, me: &Arc<ProcessCell>, other: Pid) {
        me.signals.lock().remove_link(other);
        if let Some(them) = self.table.get(other) {
            them.signals.lock().remove_link(me.pid);
        }
    }

    /// `me` monitors `target`. The monitor is recorded on `me`'s side first, so an exit of
    /// `target` that races with this call always finds it and sends the `Down`.
    pub(crate) fn monitor(&self, me: &Arc<ProcessCell>, target: Pid) -> MonitorRef {
        self.monitor_cell(me, target, self.table.get(target).as_ref())
    }

    /// `monitor`, with `target`'s cell already looked up (`None`: it is dead).
    pub(crate) fn monitor_cell(
        &self,
        me: &Arc<ProcessCell>,
        target: Pid,
        them: Option<&Arc<ProcessCell>>,
    ) -> MonitorRef {
        self.monitor_cell_as(me, target, them, MonitorRef(self.refs.next()))
    }

    /// `monitor_cell` with a reference the caller drew (a call names its monitor and its
    /// reply with one).
    pub(crate) fn monitor_cell_as(
        &self,
        me: &Arc<ProcessCell>,
        target: Pid,
        them: Option<&Arc<ProcessCell>>,
        reference: MonitorRef,
    ) -> MonitorRef {
        me.signals
            .lock()
            .relations_mut()
            .monitors
            .push((reference, target));
        let watching = them.is_some_and(|them| {
            let mut signals = them.signals.lock();
            if signals.is_doomed() {
                return false;
            }
            signals.relations_mut().watchers.push(Watcher::Process {
                reference,
                pid: me.pid,
            });
            true
        });
        if !watching {
            me.signal_down(reference, target, &ExitReason::NoProc);
        }
        reference
    }

    /// Stops `me`'s monitor `reference`, finding the monitored cell with `find` (the caller may know it already).
    pub(crate) fn demonitor_cell(
        &self,
        me: &Arc<ProcessCell>,
        reference: MonitorRef,
        find: impl FnOnce(Pid) -> Option<Arc<ProcessCell>>,
    ) -> bool {
        // Returns whether the monitor was active.
        let Some(target) = me.signals.lock().remove_monitor(reference) else {
            return false;
        };
        if let Some(them) = find(target) {
            them.signals.lock().remove_watcher(reference);
        }
        true
    }

    /// Delivers a user message to a cell already looked up; as `send`.
    #[inline]
    pub(crate) fn send_to_cell(
        &self,
        cell: &Arc<ProcessCell>,
        envelope: Mail,
    ) -> Result<(), SendError> {
        self.count_push(cell.pid, cell.push_user(envelope))
    }

    /// Calls `hook` once with `target`'s exit reason (at once with `noproc` if it is dead).
    pub(crate) fn watch(&self, target: Pid, hook: crate::signal::record::ExitHook) {
        let hook = match self.table.get(target) {
            Some(them) => {
                let mut signals = them.signals.lock();
                if !signals.exited {
                    signals.relations_mut().watchers.push(Watcher::Hook(hook));
                    return;
                }
                hook
            }
            None => hook,
        };
        hook(target, &ExitReason::NoProc);
    }
}
