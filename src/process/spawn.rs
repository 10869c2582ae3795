//! Spawning: a table slot, a cell, the links and monitors asked for, then the first run.
//!
//! Links and monitors are in place before the new process can run or be signalled by its
//! parent, so `spawn_link` and `spawn_monitor` are atomic as in Erlang.

use std::sync::Arc;

use super::addr::{Addr, SpawnError};
use super::cell::ProcessCell;
use super::code::IntoProcess;
use super::context::Ctx;
use super::mailbox::{Mailbox, Overflow};
use super::shared::Shared;
use crate::pid::Pid;
use crate::signal::MonitorRef;
use crate::signal::record::{ExitHook, Watcher};

/// The kind of mailbox a new process gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MailboxConfig {
    /// Unbounded (the default, as in Erlang).
    #[default]
    Unbounded,
    /// At most `capacity` messages waiting (at least 1); what happens to a user message past
    /// that is `overflow`'s choice. Exit, down and reply messages are never refused, but they
    /// count while they wait.
    Bounded {
        /// User messages the mailbox holds at most.
        capacity: usize,
        /// What a send beyond that does.
        overflow: Overflow,
    },
}

/// How to spawn: link or monitor the new process from its parent, and its mailbox.
///
/// ```
/// use baobab::{MailboxConfig, Overflow, SpawnOptions};
/// let options = SpawnOptions::new()
///     .link()
///     .mailbox(MailboxConfig::Bounded { capacity: 100, overflow: Overflow::Reject });
/// # let _ = options;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SpawnOptions {
    pub(crate) link: bool,
    pub(crate) monitor: bool,
    pub(crate) mailbox: MailboxConfig,
}

impl SpawnOptions {
    /// No link, no monitor, an unbounded mailbox.
    pub fn new() -> Self {
        SpawnOptions::default()
    }

    /// Link the new process to its parent (only from inside a process).
    pub fn link(mut self) -> Self {
        self.link = true;
        self
    }

    /// Monitor the new process from its parent (only from inside a process).
    pub fn monitor(mut self) -> Self {
        self.monitor = true;
        self
    }

    /// The new process's mailbox.
    pub fn mailbox(mut self, mailbox: MailboxConfig) -> Self {
        self.mailbox = mailbox;
        self
    }
}

/// What a spawn returns: the address, and the monitor if one was asked for.
#[derive(Debug)]
pub struct Spawned<M> {
    /// The new process.
    pub addr: Addr<M>,
    /// The parent's monitor on it, with [`SpawnOptions::monitor`].
    pub monitor: Option<MonitorRef>,
}

pub(crate) fn spawn_process<M, K>(
    shared: &Arc<Shared>,
    parent: Option<&Arc<ProcessCell>>,
    process: impl IntoProcess<M, K>,
    options: SpawnOptions,
) -> Result<Spawned<M>, SpawnError>
where
    M: Send + 'static,
{
    spawn_watched(shared, parent, process, options, None)
}

/// `spawn_process`, with `hook` told of the new process's exit: installed before the process
/// can run, so even an exit on its first poll is reported with its reason.
pub(crate) fn spawn_watched<M, K>(
    shared: &Arc<Shared>,
    parent: Option<&Arc<ProcessCell>>,
    process: impl IntoProcess<M, K>,
    options: SpawnOptions,
    hook: Option<ExitHook>,
) -> Result<Spawned<M>, SpawnError>
where
    M: Send + 'static,
{
    if shared.is_stopping() {
        return Err(SpawnError::ShuttingDown);
    }
    let parent_pid = parent.map_or(Pid::EXTERNAL, |p| p.pid);
    let mailbox = match options.mailbox {
        MailboxConfig::Unbounded => Mailbox::unbounded(),
        MailboxConfig::Bounded { capacity, overflow } => Mailbox::bounded(capacity, overflow),
    };
    let cell = shared
        .table
        .insert(|pid| {
            Arc::new(ProcessCell::new(
                pid,
                parent_pid,
                mailbox,
                Arc::clone(shared),
                super::types::number_of::<M>(),
            ))
        })
        .ok_or(SpawnError::TableFull)?;
    let mut monitor = None;
    if let Some(parent) = parent {
        if options.link {
            parent.signals.lock().add_link(cell.pid);
            cell.signals.lock().add_link(parent.pid);
        }
        if options.monitor {
            let reference = MonitorRef(shared.refs.next());
            parent
                .signals
                .lock()
                .relations_mut()
                .monitors
                .push((reference, cell.pid));
            cell.signals
                .lock()
                .relations_mut()
                .watchers
                .push(Watcher::Process {
                    reference,
                    pid: parent.pid,
                });
            monitor = Some(reference);
        }
    }
    if let Some(hook) = hook {
        cell.signals
            .lock()
            .relations_mut()
            .watchers
            .push(Watcher::Hook(hook));
    }
    let ctx = Ctx::new(Arc::clone(&cell));
    let code = process.into_runnable(ctx).0;
    shared.stats.spawned();
    let addr = Addr::new(cell.pid);
    super::run::start(&cell, code);
    Ok(Spawned { addr, monitor })
}

/// A process as the parent of what is spawned on its behalf (a supervisor's children): every
/// process spawned through it is linked to it, as if it had spawned it itself.
pub(crate) struct ParentRef(Arc<ProcessCell>);

impl ParentRef {
    /// The process running `ctx`.
    pub(crate) fn of<M: Send + 'static>(ctx: &super::context::Ctx<M>) -> ParentRef {
        ParentRef(Arc::clone(&ctx.cell))
    }

    /// Its pid.
    pub(crate) fn pid(&self) -> Pid {
        self.0.pid
    }

    /// Spawns `process` linked to it.
    pub(crate) fn spawn_linked<M: Send + 'static, K>(
        &self,
        process: impl IntoProcess<M, K>,
    ) -> Result<Pid, SpawnError> {
        spawn_process(
            &self.0.shared,
            Some(&self.0),
            process,
            SpawnOptions::new().link(),
        )
        .map(|spawned| spawned.addr.pid())
    }
}
