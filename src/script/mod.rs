//! The sandboxed Rhai engine jobs run in (feature `rhai`).
//!
//! A [`Sandbox`] is one engine, built once, that untrusted scripts cannot get out of:
//! - no file, process or network access: `print` and `debug` go to the job's log, `import`
//!   fails unless the sandbox is given a directory modules may be read from, and `eval` is
//!   not available;
//! - [`Limits`] on operations, call depth, expression depth, string, array and map sizes
//!   (enforced by Rhai), on the memory a running script holds, on its output and its log,
//!   and a wall-clock timeout and a cancel flag: the engine's progress callback checks them
//!   at every operation, so even `loop {}` or `sleep(1e300)` ends on time;
//! - Rhai functions that could block, panic, build a text far larger than the limits or
//!   recurse without bound are replaced (see the `natives` module's table), and a panic in
//!   any native function ends the job with an error, never its thread;
//! - every recursion is bounded by a limit and fits the stack [`Sandbox::stack_size`] gives
//!   for the limits (a guard checked at every operation ends a script before the stack runs
//!   out, should it come close);
//! - closures that capture variables are refused when compiling (they could build reference
//!   cycles, which are never freed);
//! - the job context as constants: `JOB_ID`, `CALLER_ID`, `CONTEXT_ID`, `DB_PATH` and the job's
//!   env vars;
//! - a cache of compiled scripts, keyed by their text, bounded in bytes.
//!
//! A script's last value is its output: text as is, `()` as the empty string, maps and arrays
//! as JSON.
//!
//! `docs/jobs.md` lists what the engine registers, what is replaced or removed and why, and
//! the worst-case memory of a running script.

mod actor;
mod cache;
mod limits;
mod memory;
mod modules;
mod natives;
mod render;
mod run;
mod sandbox;
mod source;
mod stack;
#[cfg(test)]
mod tests;
mod ticker;

/// The Rhai crate this sandbox is built on, for [`SandboxConfig::extend`].
pub use rhai;

pub use actor::RhaiActor;
pub use limits::{Limit, LimitError, Limits};
pub use memory::{CountingAllocator, memory_counted};
pub use sandbox::{DEFAULT_CACHE_BYTES, Extend, Sandbox, SandboxConfig, ScriptError, ScriptOutput};
pub use source::{SourceError, kind as file_kind, read_source};
