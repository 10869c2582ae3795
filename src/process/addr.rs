//! Typed addresses and the errors of sending and spawning.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use crate::pid::Pid;

/// The address of a process that receives messages of type `M`.
///
/// An `Addr` is a [`Pid`] with the message type attached, so the compiler checks what is sent.
/// It is `Copy`; like a `Pid` it may outlive its process, and a send to a dead process is
/// dropped (and counted), as in Erlang.
pub struct Addr<M> {
    pid: Pid,
    _message: PhantomData<fn(M)>,
}

impl<M> Addr<M> {
    pub(crate) fn new(pid: Pid) -> Self {
        Addr {
            pid,
            _message: PhantomData,
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        self.pid
    }
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Addr<M> {}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        self.pid == other.pid
    }
}

impl<M> Eq for Addr<M> {}

impl<M> Hash for Addr<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.pid.hash(state);
    }
}

impl<M> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Addr({})", self.pid)
    }
}

impl<M> From<Addr<M>> for Pid {
    fn from(addr: Addr<M>) -> Pid {
        addr.pid
    }
}

/// Why a [`Pid`] could not be made an [`Addr<M>`](Addr) (see
/// [`Handle::addr_of`](crate::Handle::addr_of)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// No process has this pid (it exited, or never was).
    #[error("no process {0}")]
    NoProc(Pid),
    /// The process takes another message type than the one asked for.
    #[error("process {pid} takes messages of type {actual}, not {expected}")]
    WrongType {
        /// The process.
        pid: Pid,
        /// The type asked for.
        expected: &'static str,
        /// The type it takes.
        actual: &'static str,
    },
}

/// Why a send failed. A send to a dead process is *not* an error: it is dropped and counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The receiver's bounded mailbox, with [`Overflow::Reject`](crate::Overflow::Reject), is full.
    #[error("the mailbox of {0} is full")]
    MailboxFull(Pid),
    /// No process is registered under this name.
    #[error("no process is registered as {0:?}")]
    NoName(String),
    /// The process registered under this name takes another message type than the one sent.
    #[error("the process registered as {name:?} ({pid}) does not take messages of type {expected}")]
    WrongType {
        /// The name.
        name: String,
        /// The process registered under it.
        pid: Pid,
        /// The type that was sent.
        expected: &'static str,
    },
}

/// Why a spawn failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The process table holds [`MAX_PROCESSES`](crate::MAX_PROCESSES) processes already.
    #[error("the process table is full")]
    TableFull,
    /// The runtime is shutting down.
    #[error("the runtime is shutting down")]
    ShuttingDown,
}
