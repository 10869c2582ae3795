//! Registered names: `register`, `whereis`, `unregister`, send to a name.
//!
//! A name maps to one live process and the type of message it receives, so `whereis::<T>`
//! hands back a typed address only when the types agree. A name is released when its process
//! exits; registering a taken name is an error.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::pid::Pid;
use crate::process::addr::{Addr, SendError};
use crate::process::cell::ProcessCell;

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another process holds the name.
    #[error("the name {name:?} is registered to {holder}")]
    NameTaken {
        /// The name.
        name: String,
        /// Its holder.
        holder: Pid,
    },
    /// The process has a name already (a process has at most one, as in Erlang).
    #[error("{pid} is registered as {current:?} already")]
    AlreadyNamed {
        /// The process.
        pid: Pid,
        /// Its name.
        current: String,
    },
    /// The process is dead.
    #[error("{0} is not alive")]
    NoProc(Pid),
}

#[derive(Default)]
pub(crate) struct Registry {
    names: Mutex<HashMap<Arc<str>, (Pid, TypeId)>>,
}

impl Registry {
    fn names(&self) -> MutexGuard<'_, HashMap<Arc<str>, (Pid, TypeId)>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(
        &self,
        name: &str,
        cell: &Arc<ProcessCell>,
        message_type: TypeId,
    ) -> Result<(), RegistryError> {
        let mut names = self.names();
        if let Some((holder, _)) = names.get(name) {
            return Err(RegistryError::NameTaken {
                name: name.to_owned(),
                holder: *holder,
            });
        }
        let mut signals = cell.signals.lock();
        if signals.exited {
            return Err(RegistryError::NoProc(cell.pid));
        }
        let relations = signals.relations_mut();
        if let Some(current) = &relations.name {
            return Err(RegistryError::AlreadyNamed {
                pid: cell.pid,
                current: current.to_string(),
            });
        }
        let name: Arc<str> = Arc::from(name);
        relations.name = Some(Arc::clone(&name));
        names.insert(name, (cell.pid, message_type));
        Ok(())
    }

    /// Removes `name` if `cell` holds it.
    pub(crate) fn unregister(&self, name: &str, cell: &Arc<ProcessCell>) -> bool {
        let mut names = self.names();
        if names.get(name).is_none_or(|(pid, _)| *pid != cell.pid) {
            return false;
        }
        names.remove(name);
        cell.signals.lock().relations_mut().name = None;
        true
    }

    /// `pid` exited: its name goes.
    pub(crate) fn release(&self, name: &str, pid: Pid) {
        let mut names = self.names();
        if names.get(name).is_some_and(|(holder, _)| *holder == pid) {
            names.remove(name);
        }
    }

    pub(crate) fn whereis_pid(&self, name: &str) -> Option<Pid> {
        self.names().get(name).map(|(pid, _)| *pid)
    }

    pub(crate) fn whereis<T: 'static>(&self, name: &str) -> Option<Addr<T>> {
        self.lookup(name).ok()
    }

    /// The address registered as `name`, if its process takes messages of type `T`; else why
    /// not, as the error a send to that name reports.
    pub(crate) fn lookup<T: 'static>(&self, name: &str) -> Result<Addr<T>, SendError> {
        match self.names().get(name) {
            Some((pid, ty)) if *ty == TypeId::of::<T>() => Ok(Addr::new(*pid)),
            Some((pid, _)) => Err(SendError::WrongType {
                name: name.to_owned(),
                pid: *pid,
                expected: std::any::type_name::<T>(),
            }),
            None => Err(SendError::NoName(name.to_owned())),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.names().len()
    }
}
