//! A process's exit: after its last poll, tell everyone who must know.
//!
//! Order: release the name, mark the state exiting and the signal record exited (from here on
//! a link or monitor attempt sees `noproc`), free the table slot (sends are dropped), then
//! signal links, fire monitors and drop the monitors this process held.

use std::sync::Arc;

use tracing::trace;

use super::cell::ProcessCell;
use crate::signal::ExitReason;
use crate::signal::record::Watcher;
use crate::signal::rules::SignalKind;

pub(crate) fn exit_process(cell: &Arc<ProcessCell>, reason: ExitReason) {
    let shared = &cell.shared;
    let pid = cell.pid;
    trace!(%pid, %reason, "process exit");
    // The name goes first: whoever sees this process dead (is_alive, a watch) finds it free.
    let name = cell.signals.lock().take_name();
    if let Some(name) = &name {
        shared.registry.release(name, pid);
    }
    cell.state.transition_to_exiting();
    let relations = cell.signals.lock().take_for_exit();
    shared.table.remove(pid);
    // Counted before anyone hears of the exit, so a watcher sees figures that include it.
    shared.stats.exited();
    cell.mailbox.clear();
    if let Some(relations) = relations {
        if let Some(name) = &relations.name {
            shared.registry.release(name, pid);
        }
        for link in relations.links {
            if let Some(other) = shared.table.get(link) {
                other.signal_exit(pid, &reason, SignalKind::Link);
            }
        }
        for watcher in relations.watchers {
            match watcher {
                Watcher::Process {
                    reference,
                    pid: watcher,
                } => {
                    if let Some(other) = shared.table.get(watcher) {
                        other.signal_down(reference, pid, &reason);
                    }
                }
                Watcher::Hook(hook) => hook(pid, &reason),
            }
        }
        for (reference, target) in relations.monitors {
            if let Some(other) = shared.table.get(target) {
                other.signals.lock().remove_watcher(reference);
            }
        }
    }
}
