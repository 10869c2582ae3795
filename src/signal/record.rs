//! One process's signal record: trap_exit, a pending exit, and (allocated on first use) its
//! links, monitors and registered name. It lives behind the process's signal lock; every
//! change to links and monitors happens under the locks of the processes involved, so a link
//! or monitor set up while the other side exits either lands before that exit (and is seen by
//! it) or finds the other side `exited` (and gets `noproc`).

use std::sync::Arc;

use super::{ExitReason, MonitorRef};
use crate::pid::Pid;

/// Called once with the exit of a watched process, from whichever thread ran that exit.
pub(crate) type ExitHook = Box<dyn FnOnce(Pid, &ExitReason) + Send>;

/// Someone who will hear of this process's exit.
pub(crate) enum Watcher {
    /// A process's monitor: it gets a `Down` message.
    Process { reference: MonitorRef, pid: Pid },
    /// Code outside the runtime (`Handle::watch`, `block_on`).
    Hook(ExitHook),
}

#[derive(Default)]
pub(crate) struct Relations {
    pub(crate) links: Vec<Pid>,
    /// Monitors others hold on this process.
    pub(crate) watchers: Vec<Watcher>,
    /// Monitors this process holds on others.
    pub(crate) monitors: Vec<(MonitorRef, Pid)>,
    pub(crate) name: Option<Arc<str>>,
}

#[derive(Default)]
pub(crate) struct SignalState {
    /// Set once, when the process's exit runs; nothing links to or monitors it after that.
    pub(crate) exited: bool,
    pub(crate) trap_exit: bool,
    /// The reason the process must die with at its next scheduling point.
    pub(crate) pending_exit: Option<ExitReason>,
    relations: Option<Box<Relations>>,
}

impl SignalState {
    /// Dead, or hit by a fatal exit signal it has not acted on yet. Signals sent after that one
    /// (a link, a monitor, `is_alive`) find it dead, as OTP's in-order signals imply.
    pub(crate) fn is_doomed(&self) -> bool {
        self.exited || self.pending_exit.is_some()
    }

    pub(crate) fn relations(&self) -> Option<&Relations> {
        self.relations.as_deref()
    }

    pub(crate) fn relations_mut(&mut self) -> &mut Relations {
        self.relations.get_or_insert_with(Box::default)
    }

    /// Takes the registered name, if any (the first step of an exit).
    pub(crate) fn take_name(&mut self) -> Option<Arc<str>> {
        self.relations.as_mut().and_then(|r| r.name.take())
    }

    /// Marks the process exited and hands back everything that must hear of it.
    pub(crate) fn take_for_exit(&mut self) -> Option<Box<Relations>> {
        self.exited = true;
        self.relations.take()
    }

    pub(crate) fn add_link(&mut self, other: Pid) {
        let links = &mut self.relations_mut().links;
        if !links.contains(&other) {
            links.push(other);
        }
    }

    /// Returns whether the link existed.
    pub(crate) fn remove_link(&mut self, other: Pid) -> bool {
        let Some(relations) = self.relations.as_mut() else {
            return false;
        };
        let before = relations.links.len();
        relations.links.retain(|&pid| pid != other);
        relations.links.len() != before
    }

    /// Returns the monitored pid if this process held the monitor.
    pub(crate) fn remove_monitor(&mut self, reference: MonitorRef) -> Option<Pid> {
        let relations = self.relations.as_mut()?;
        let at = relations
            .monitors
            .iter()
            .position(|(r, _)| *r == reference)?;
        Some(relations.monitors.swap_remove(at).1)
    }

    pub(crate) fn remove_watcher(&mut self, reference: MonitorRef) {
        if let Some(relations) = self.relations.as_mut() {
            relations
                .watchers
                .retain(|w| !matches!(w, Watcher::Process { reference: r, .. } if *r == reference));
        }
    }

    /// Records the first fatal reason; later ones lose, as in OTP.
    pub(crate) fn set_pending_exit(&mut self, reason: ExitReason) -> bool {
        if self.pending_exit.is_some() {
            return false;
        }
        self.pending_exit = Some(reason);
        true
    }
}
