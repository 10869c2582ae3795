//! Exit signals, links and monitors: the OTP rules, as data and pure decisions.
//!
//! `reason` holds [`ExitReason`]; `rules` decides what an exit signal does to its receiver;
//! `state` is the per-process record of links, monitors, trap_exit and a pending exit. The
//! process layer moves signals between processes with these.

pub(crate) mod reason;
pub(crate) mod record;
pub(crate) mod rules;

pub use reason::ExitReason;

use crate::pid::{Pid, Ref};

/// A trapped exit signal, received as a message by a process that traps exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitSignal {
    /// Who sent it: the linked process that exited, or the caller of `exit`.
    pub from: Pid,
    /// The reason it carries.
    pub reason: ExitReason,
}

/// A monitor's one message: the monitored process exited (or was already dead: `NoProc`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    /// The reference `monitor` returned.
    pub reference: MonitorRef,
    /// The monitored process.
    pub pid: Pid,
    /// Its exit reason.
    pub reason: ExitReason,
}

/// The reference of one monitor, to match its `Down` and to demonitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MonitorRef(pub(crate) Ref);

impl MonitorRef {
    /// The underlying unique reference.
    pub fn reference(self) -> Ref {
        self.0
    }
}
