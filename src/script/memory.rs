//! Counting what a script allocates, for [`Limits::max_memory`](super::Limits::max_memory).
//!
//! Rhai has no memory limit of its own: its size limits bound each value, but a map grown by
//! index assignment, or many values each under the limits, can hold any amount. So the
//! process's allocator counts, per thread, the bytes allocated minus the bytes freed; a
//! running script's thread takes the count when the script starts, and the engine's progress
//! callback (called at every operation) ends the script once it holds more than its limit.
//! One operation allocates at most about one value's worth (bounded by the size limits; the
//! functions that could turn a small value into a huge text are replaced by bounded ones), so
//! a script stops within one such value of its limit.
//!
//! Counting needs [`CountingAllocator`] to be the process's global allocator; the `baobab`
//! binary installs it. Without it, [`counting`] is false and `max_memory` is not enforced.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    /// Bytes allocated minus bytes freed on this thread since it started (may go below zero:
    /// memory allocated elsewhere can be freed here).
    static NET: Cell<i64> = const { Cell::new(0) };
}

/// The system allocator, counting each thread's allocations for the sandbox's memory limit.
/// Install it in a program that runs untrusted scripts:
///
/// ```
/// #[global_allocator]
/// static ALLOCATOR: baobab::script::CountingAllocator = baobab::script::CountingAllocator;
/// # fn main() { assert!(baobab::script::memory_counted()); }
/// ```
///
/// Its cost is one thread-local addition per allocation and per free.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountingAllocator;

#[inline]
fn add(bytes: i64) {
    // `try_with`: no count during the thread's teardown (never fails for a `const` cell
    // without a destructor, but an allocator must not panic).
    let _ = NET.try_with(|net| net.set(net.get().wrapping_add(bytes)));
}

// SAFETY: every call is passed on to `System` unchanged; the counting touches only a
// thread-local `Cell` (no allocation, no lock, no panic), so `System`'s guarantees hold. (The
// cell is `const`-initialised and has no destructor: on targets with native thread-locals, as
// Linux, macOS and Windows have, its access allocates nothing and cannot re-enter this.)
unsafe impl GlobalAlloc for CountingAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's `layout` promises, passed on.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            add(layout.size() as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            add(layout.size() as i64);
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (so from `System`) with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc`, and `new_size` is the caller's promise.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        new
    }
}

/// This thread's count: bytes allocated minus bytes freed on it.
#[inline]
pub(crate) fn net() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

/// Whether allocations are counted: the process's global allocator is a
/// [`CountingAllocator`].
pub fn memory_counted() -> bool {
    static COUNTED: OnceLock<bool> = OnceLock::new();
    *COUNTED.get_or_init(|| {
        let before = net();
        let probe = std::hint::black_box(vec![0u8; 4096]);
        let counted = net() - before >= 4096;
        drop(probe);
        counted
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_the_allocator_installed_nothing_is_counted() {
        // The library's unit tests run on the system allocator.
        assert!(!super::memory_counted());
    }
}
