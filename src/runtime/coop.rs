//! Reductions: each scheduler slice gets a budget of messages; receiving spends it. When it is
//! spent, the next receive yields to the back of the run queue, so a process with a full
//! mailbox cannot starve the others (the BEAM's reductions, counted in messages).

use std::cell::Cell;

thread_local! {
    static BUDGET: Cell<u32> = const { Cell::new(u32::MAX) };
}

/// Gives the slice about to run its budget.
pub(crate) fn set(budget: u32) {
    BUDGET.with(|b| b.set(budget));
}

/// Budget left in this slice.
pub(crate) fn remaining() -> u32 {
    BUDGET.with(Cell::get)
}

pub(crate) fn has_budget() -> bool {
    remaining() > 0
}

/// Spends one reduction.
pub(crate) fn consume() {
    BUDGET.with(|b| b.set(b.get().saturating_sub(1)));
}
