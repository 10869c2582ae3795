//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use baobab::{ExitReason, Handle, Pid, Runtime};

/// A safety net for waits that should end at once: a bug fails the test instead of hanging it.
pub const SAFETY: Duration = Duration::from_secs(10);

pub fn runtime() -> Runtime {
    Runtime::builder().threads(2).build()
}

/// Waits (from outside the runtime) for `pid` to exit and returns its reason.
pub fn exit_of(handle: &Handle, pid: Pid) -> ExitReason {
    handle
        .watch(pid)
        .wait_timeout(SAFETY)
        .unwrap_or_else(|| panic!("{pid} did not exit within {SAFETY:?}"))
}
#[cfg(feature = "cli")]
pub mod cli;
#[allow(dead_code)]
pub mod hero;
pub mod log;
pub mod nats_server;
pub mod redis_server;
pub mod store_conformance;
