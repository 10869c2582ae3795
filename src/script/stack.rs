//! How much stack a script may use, and a guard that ends it before the thread's stack does.
//!
//! Rhai recurses: once per level of script function calls and of nested expressions while
//! running, once per level of nested expressions while compiling, and once per level of
//! nested arrays and maps when it checks, clones or drops a value. A thread whose stack
//! overflows aborts the whole process, so:
//! - the limits bound every one of those depths (calls and expressions by their limits,
//!   nesting by the array and map sizes, which count nested containers), and
//!   [`stack_size`] is the stack they need, measured per level for each kind of recursion;
//! - scripts run on threads with at least that much stack (the runner sizes its blocking
//!   threads so; a sandbox called on a smaller thread runs the script on a thread of its
//!   own);
//! - at every operation, the engine's progress callback checks how much stack is left and
//!   ends the script with `limit exceeded: stack` once less than the room for nesting
//!   remains, should a measurement be off.

use std::cell::Cell;

use super::Limits;

/// Stack per level of nested arrays or maps, for the deepest of Rhai's recursions over a
/// value (checking its size, cloning, dropping, hashing), with a margin: measured at 208 (an
/// array) to 353 (a map) bytes in a release build and up to 2.2 KB in a debug one;
/// `tests/sandbox_stack.rs` walks the deepest value the limits allow on a thread of exactly
/// the stack this gives.
#[cfg(not(debug_assertions))]
const NESTING_FRAME: usize = 512;
#[cfg(debug_assertions)]
const NESTING_FRAME: usize = 3 * 1024;

/// Stack per level of nested expressions, running or compiling, with a margin (measured:
/// at most 1.7 KB running and 3.4 KB compiling in a release build, 6.2 KB and 24 KB in a debug
/// one; compiling never nests as deep as running can). `tests/sandbox_hostile.rs` runs the
/// deepest recursion the largest depth limits allow and expects the limits to end it, not
/// the stack guard.
#[cfg(not(debug_assertions))]
const EXPR_FRAME: usize = 2 * 1024;
#[cfg(debug_assertions)]
const EXPR_FRAME: usize = 12 * 1024;

/// Stack per level of script function calls (beyond its expressions), with a margin
/// (measured: 6–8 KB in a release build, 41–48 KB in a debug one).
#[cfg(not(debug_assertions))]
const CALL_FRAME: usize = 8 * 1024;
#[cfg(debug_assertions)]
const CALL_FRAME: usize = 48 * 1024;

/// What a run needs besides its recursion: the sandbox's own frames, native functions, the
/// engine's entry.
const BASE: usize = 512 * 1024;

/// How much of a thread's stack may be in use when a run starts on it: a thread given
/// [`stack_size`] still runs scripts itself if it has used no more than this.
pub(crate) const ENTRY_SLACK: usize = BASE / 2;

/// The stack a script needs under `limits`, in bytes: see the module's docs.
pub(crate) fn stack_size(limits: &Limits) -> usize {
    let limits = limits.clamped();
    let nesting = nesting_room(&limits);
    let calls = limits.max_call_depth + 1;
    // Each call level may hold a body nested to the expression limit.
    let running = calls * (CALL_FRAME + limits.max_expr_depth * EXPR_FRAME);
    let compiling = limits.max_expr_depth * EXPR_FRAME;
    BASE + nesting + running.max(compiling)
}

/// The room kept for recursion over a value: its deepest nesting under `limits` (each level
/// is an array or a map, each counted by its size limit) times the frame per level.
fn nesting_room(limits: &Limits) -> usize {
    let limits = limits.clamped();
    let depth = limits.max_array_size + limits.max_map_size + 1;
    depth.saturating_mul(NESTING_FRAME)
}

thread_local! {
    /// The lowest address the guard lets a script's stack reach on this thread (0: no
    /// guard).
    static FLOOR: Cell<usize> = const { Cell::new(0) };
    /// This thread's stack: (lowest address, size), once looked up.
    static BOUNDS: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// An address in the current frame: the stack grows down from here.
#[inline(always)]
fn here() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The stack left below the current frame on this thread, if it can be known.
pub(crate) fn remaining() -> Option<usize> {
    let (low, _) = bounds()?;
    Some(here().saturating_sub(low))
}

fn bounds() -> Option<(usize, usize)> {
    if let Some(bounds) = BOUNDS.get() {
        return Some(bounds);
    }
    let bounds = thread_stack()?;
    BOUNDS.set(Some(bounds));
    Some(bounds)
}

#[cfg(all(target_os = "linux", not(miri)))]
fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: `pthread_getattr_np` fills the zeroed attribute object for the calling thread
    // (glibc and musl), `pthread_attr_getstack` reads it, and it is destroyed once, whatever
    // the outcome, after a successful init.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let found = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        found.then_some((addr as usize, size))
    }
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn thread_stack() -> Option<(usize, usize)> {
    None
}

/// Arms the guard for a run on this thread: from now on [`exhausted`] holds once less than
/// `keep` bytes of stack are left. Returns what to restore with [`disarm`].
pub(crate) fn arm(keep: usize) -> usize {
    let floor = bounds().map_or(0, |(low, _)| low.saturating_add(keep));
    FLOOR.replace(floor)
}

/// Puts back the guard an [`arm`] replaced.
pub(crate) fn disarm(previous: usize) {
    FLOOR.set(previous);
}

/// Whether the running script has come within the kept room of the stack's end.
#[inline]
pub(crate) fn exhausted() -> bool {
    let floor = FLOOR.get();
    floor != 0 && here() < floor
}

/// The room a run on this thread keeps free below the guard: the recursion over values.
pub(crate) fn keep(limits: &Limits) -> usize {
    nesting_room(&limits.clamped()) + BASE / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_of_this_thread_is_known_and_the_guard_trips_near_its_end() {
        let left = remaining().expect("linux knows its thread stacks");
        assert!(left > 0);
        // Keep almost everything: the guard trips at once.
        let previous = arm(left + 4096);
        assert!(exhausted());
        disarm(previous);
        assert!(!exhausted());
        let previous = arm(1024);
        assert!(!exhausted());
        disarm(previous);
    }

    #[test]
    fn the_stack_grows_with_the_limits() {
        let small = Limits {
            max_array_size: 10,
            max_map_size: 10,
            max_call_depth: 4,
            max_expr_depth: 4,
            ..Limits::default()
        };
        assert!(stack_size(&small) < stack_size(&Limits::default()));
        let largest = Limits {
            max_array_size: usize::MAX,
            max_map_size: 0,
            ..Limits::default()
        };
        assert_eq!(
            nesting_room(&largest),
            (Limits::MAX_CONTAINER_SIZE + 2) * NESTING_FRAME
        );
    }
}
