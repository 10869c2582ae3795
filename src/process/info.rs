//! Introspection: a snapshot of each live process.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::cell::ProcessCell;
use super::status::Status;
use crate::pid::Pid;
use crate::signal::MonitorRef;

/// What one live process looked like when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: Pid,
    /// Who spawned it ([`Pid::EXTERNAL`] if code outside the runtime did).
    pub parent: Pid,
    /// Its registered name.
    pub name: Option<String>,
    /// Waiting, runnable, running or exiting.
    pub status: Status,
    /// Messages in its mailbox.
    pub mailbox_len: usize,
    /// User messages its bounded mailbox dropped.
    pub mailbox_dropped: usize,
    /// Reductions (messages handled) so far.
    pub reductions: u64,
    /// Linked processes.
    pub links: Vec<Pid>,
    /// Monitors it holds: reference and monitored process.
    pub monitors: Vec<(MonitorRef, Pid)>,
    /// Processes monitoring it.
    pub monitored_by: Vec<Pid>,
    /// Whether it traps exits.
    pub trap_exit: bool,
    /// The type of the user messages it takes.
    pub message_type: &'static str,
}

impl ProcessInfo {
    pub(crate) fn of(cell: &Arc<ProcessCell>) -> ProcessInfo {
        let signals = cell.signals.lock();
        let relations = signals.relations();
        ProcessInfo {
            pid: cell.pid,
            parent: cell.parent,
            name: relations.and_then(|r| r.name.as_deref().map(str::to_owned)),
            status: cell.state.status(),
            mailbox_len: cell.mailbox.len(),
            mailbox_dropped: cell.mailbox.dropped(),
            reductions: cell.reductions.load(Ordering::Relaxed),
            links: relations.map(|r| r.links.clone()).unwrap_or_default(),
            monitors: relations.map(|r| r.monitors.clone()).unwrap_or_default(),
            monitored_by: relations
                .map(|r| {
                    r.watchers
                        .iter()
                        .filter_map(|w| match w {
                            crate::signal::record::Watcher::Process { pid, .. } => Some(*pid),
                            crate::signal::record::Watcher::Hook(_) => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            message_type: super::types::name_of(cell.message_type),
            trap_exit: signals.trap_exit,
        }
    }
}
