//! The process table: a slab of slots, each with a generation, indexed by `Pid`.
//!
//! Slots live in fixed chunks that are allocated on first use and never move, so a lookup is a
//! chunk index, a slot index and one short, uncontended slot lock. Freed indices are reused
//! last-in first-out, each reuse with a new generation, so a stale `Pid` finds a generation
//! that does not match and reaches nothing.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::cell::ProcessCell;
use crate::pid::Pid;

const CHUNK_BITS: u32 = 12;
const CHUNK_SIZE: usize = 1 << CHUNK_BITS;
const CHUNKS: usize = 4096;

/// The most processes one runtime can hold at once (16,777,216).
pub const MAX_PROCESSES: usize = CHUNK_SIZE * CHUNKS;

#[derive(Default)]
struct SlotState {
    generation: u32,
    cell: Option<Arc<ProcessCell>>,
}

type Slot = Mutex<SlotState>;

pub(crate) struct ProcessTable {
    chunks: Box<[OnceLock<Box<[Slot]>>]>,
    free: Mutex<Vec<u32>>,
    /// `free.len()`, kept under its lock: an insert with nothing to reuse skips the lock.
    free_len: AtomicUsize,
    next_fresh: AtomicU32,
    live: AtomicUsize,
}

fn lock_slot(slot: &Slot) -> std::sync::MutexGuard<'_, SlotState> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ProcessTable {
    pub(crate) fn new() -> Self {
        ProcessTable {
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            free: Mutex::new(Vec::new()),
            free_len: AtomicUsize::new(0),
            next_fresh: AtomicU32::new(0),
            live: AtomicUsize::new(0),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let chunk = self.chunks.get((index >> CHUNK_BITS) as usize)?.get()?;
        chunk.get(index as usize & (CHUNK_SIZE - 1))
    }

    fn slot_or_alloc(&self, index: u32) -> &Slot {
        let chunk = self.chunks[(index >> CHUNK_BITS) as usize]
            .get_or_init(|| (0..CHUNK_SIZE).map(|_| Slot::default()).collect());
        &chunk[index as usize & (CHUNK_SIZE - 1)]
    }

    /// Takes a free slot and fills it with the cell `make` builds for the slot's new pid.
    /// Returns `None` when the table is full.
    pub(crate) fn insert(
        &self,
        make: impl FnOnce(Pid) -> Arc<ProcessCell>,
    ) -> Option<Arc<ProcessCell>> {
        // A stale zero only means a fresh index where a freed one could have been reused.
        let reused = if self.free_len.load(Ordering::Relaxed) == 0 {
            None
        } else {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            let index = free.pop();
            self.free_len.store(free.len(), Ordering::Relaxed);
            index
        };
        let index = match reused {
            Some(index) => index,
            None => {
                let index = self.next_fresh.fetch_add(1, Ordering::Relaxed);
                if index as usize >= MAX_PROCESSES {
                    self.next_fresh.fetch_sub(1, Ordering::Relaxed);
                    return None;
                }
                index
            }
        };
        let mut slot = lock_slot(self.slot_or_alloc(index));
        let cell = make(Pid::new(index, slot.generation));
        slot.cell = Some(Arc::clone(&cell));
        drop(slot);
        self.live.fetch_add(1, Ordering::AcqRel);
        Some(cell)
    }

    /// The live process behind `pid`, if any.
    pub(crate) fn get(&self, pid: Pid) -> Option<Arc<ProcessCell>> {
        let slot = lock_slot(self.slot(pid.index())?);
        if slot.generation != pid.generation() {
            return None;
        }
        slot.cell.clone()
    }

    /// Runs `f` on the live process behind `pid` while its slot is locked, which keeps the
    /// process from being freed meanwhile without touching its reference count. `f` must be
    /// short and must not touch the table.
    pub(crate) fn with<T>(&self, pid: Pid, f: impl FnOnce(&Arc<ProcessCell>) -> T) -> Option<T> {
        let slot = lock_slot(self.slot(pid.index())?);
        if slot.generation != pid.generation() {
            return None;
        }
        slot.cell.as_ref().map(f)
    }

    /// Empties `pid`'s slot and moves its generation on. Returns whether it was there.
    pub(crate) fn remove(&self, pid: Pid) -> bool {
        let Some(slot) = self.slot(pid.index()) else {
            return false;
        };
        let cell = {
            let mut slot = lock_slot(slot);
            if slot.generation != pid.generation() || slot.cell.is_none() {
                return false;
            }
            slot.generation = slot.generation.wrapping_add(1);
            slot.cell.take()
        };
        {
            let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
            free.push(pid.index());
            self.free_len.store(free.len(), Ordering::Relaxed);
        }
        self.live.fetch_sub(1, Ordering::AcqRel);
        drop(cell);
        true
    }

    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Every live process, in slot order.
    pub(crate) fn cells(&self) -> Vec<Arc<ProcessCell>> {
        let fresh = self.next_fresh.load(Ordering::Acquire) as usize;
        let mut cells = Vec::with_capacity(self.live());
        for index in 0..fresh.min(MAX_PROCESSES) {
            if let Some(slot) = self.slot(index as u32)
                && let Some(cell) = &lock_slot(slot).cell
            {
                cells.push(Arc::clone(cell));
            }
        }
        cells
    }
}
