//! Reductions: each scheduler slice gives a process a budget of messages; receiving spends
//! it. When it is spent, the next receive yields to the back of the run queue, so a process
//! with a full mailbox cannot starve the others (the BEAM's reductions, counted in messages).
//!
//! The budget lives in the process's cell, next to its mailbox: only the thread running the
//! process touches it (see `process/run.rs`), so plain loads and stores suffice.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Budget(AtomicU32);

impl Budget {
    /// Gives the slice about to run its budget.
    #[inline]
    pub(crate) fn set(&self, budget: u32) {
        self.0.store(budget, Ordering::Relaxed);
    }

    /// Budget left in this slice.
    #[inline]
    pub(crate) fn remaining(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn has_budget(&self) -> bool {
        self.remaining() > 0
    }

    /// Spends one reduction.
    #[inline]
    pub(crate) fn consume(&self) {
        self.set(self.remaining().saturating_sub(1));
    }
}
