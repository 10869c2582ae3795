//! Supervision trees, as OTP's `supervisor`: a supervisor is a process that starts its
//! children in order, restarts them by their restart type and its strategy, gives up (and exits
//! with `shutdown`) when restarts come faster than its intensity allows, and stops its children
//! in reverse order. Supervisors nest: a supervisor child is a whole subtree, and a supervisor
//! that gives up is a crashed child to its own supervisor.
//!
//! See `docs/supervision.md` for the rules and where they differ from OTP.

mod child_ref;
mod dynamic;
mod intensity;
mod report;
mod shutdown;
mod spec;
#[allow(clippy::module_inception)]
mod supervisor;

pub use child_ref::ChildRef;
pub use dynamic::{DynamicMsg, DynamicSpec, DynamicSupervisor};
pub(crate) use shutdown::shut_down_all;
pub use spec::{ChildKind, ChildSpec, ChildStarter, Restart, Shutdown, Strategy, SupervisorSpec};
pub use supervisor::{ChildCounts, ChildInfo, Supervisor, SupervisorError, SupervisorMsg};
