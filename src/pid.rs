//! Process identifiers and references.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A process identifier: a slot index in the process table plus the slot's generation.
///
/// A `Pid` is small and `Copy`. When a process exits its slot's generation moves on, so a
/// stale `Pid` never reaches a newer process that reuses the slot. Sending to a dead `Pid` is
/// not an error (as in Erlang): the message is dropped and counted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    index: u32,
    generation: u32,
}

impl Pid {
    /// The pseudo-pid of code outside the runtime (the thread that calls `Handle::exit`, a test's
    /// main thread). It is never alive.
    pub const EXTERNAL: Pid = Pid {
        index: u32::MAX,
        generation: u32::MAX,
    };

    pub(crate) const fn new(index: u32, generation: u32) -> Self {
        Pid { index, generation }
    }

    /// The slot index in the process table.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// The generation of the slot when this process was spawned.
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Pid::EXTERNAL {
            f.write_str("<external>")
        } else {
            write!(f, "<0.{}.{}>", self.index, self.generation)
        }
    }
}

/// A unique reference (monitors, calls, timers), unique within one runtime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ref(u64);

impl Ref {
    /// The raw number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#Ref<{}>", self.0)
    }
}

impl fmt::Display for Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Hands out references.
#[derive(Debug, Default)]
pub(crate) struct RefSource(AtomicU64);

impl RefSource {
    pub(crate) fn next(&self) -> Ref {
        Ref(self.0.fetch_add(1, Ordering::Relaxed) + 1)
    }
}
