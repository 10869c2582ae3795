//! Each process's message type as a small number, so that a [`Pid`](crate::Pid) can be checked
//! against the `Addr<M>` someone wants to make of it. Types are numbered the first time a
//! process of that type is spawned; a scheduler thread remembers the last type it numbered, so
//! spawning processes of one type costs a compare.

use std::any::TypeId;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use super::addr::{Addr, AddrError};
use super::shared::Shared;
use crate::pid::Pid;

struct Types {
    numbers: HashMap<TypeId, u32>,
    names: Vec<&'static str>,
}

static TYPES: LazyLock<Mutex<Types>> = LazyLock::new(|| {
    Mutex::new(Types {
        numbers: HashMap::new(),
        names: Vec::new(),
    })
});

thread_local! {
    static LAST: Cell<Option<(TypeId, u32)>> = const { Cell::new(None) };
}

/// The number of message type `M`.
#[inline]
pub(crate) fn number_of<M: 'static>() -> u32 {
    let id = TypeId::of::<M>();
    if let Some((last, number)) = LAST.with(Cell::get)
        && last == id
    {
        return number;
    }
    let number = {
        let mut types = TYPES.lock().unwrap_or_else(PoisonError::into_inner);
        let next = types.names.len() as u32;
        match types.numbers.get(&id) {
            Some(&number) => number,
            None => {
                types.numbers.insert(id, next);
                types.names.push(std::any::type_name::<M>());
                next
            }
        }
    };
    LAST.with(|last| last.set(Some((id, number))));
    number
}

/// The name of the message type numbered `number`.
pub(crate) fn name_of(number: u32) -> &'static str {
    TYPES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .names
        .get(number as usize)
        .copied()
        .unwrap_or("?")
}

impl Shared {
    /// `pid` as an `Addr<M>`, if it is alive and takes `M`.
    pub(crate) fn addr_of<M: 'static>(&self, pid: Pid) -> Result<Addr<M>, AddrError> {
        let taken = self
            .table
            .with(pid, |cell| cell.message_type)
            .ok_or(AddrError::NoProc(pid))?;
        if taken == number_of::<M>() {
            Ok(Addr::new(pid))
        } else {
            Err(AddrError::WrongType {
                pid,
                expected: std::any::type_name::<M>(),
                actual: name_of(taken),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_one_number_and_its_name() {
        let a = number_of::<u8>();
        let b = number_of::<String>();
        assert_ne!(a, b);
        assert_eq!(number_of::<u8>(), a);
        assert_eq!(number_of::<String>(), b);
        let from_another_thread = std::thread::spawn(number_of::<String>).join().unwrap();
        assert_eq!(from_another_thread, b);
        assert_eq!(name_of(a), "u8");
        assert_eq!(name_of(b), "alloc::string::String");
    }
}
