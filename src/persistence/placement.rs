//! Placement: where an id's single live activation runs when several runtimes share one
//! store. The virtual actors ask it before activating an id and forward a command to the
//! runtime it names; `cluster` implements it over NATS.
// Without the `nats` feature nothing implements it.
#![cfg_attr(not(feature = "nats"), allow(dead_code))]

use std::time::Duration;

use super::model::EventSourced;
use super::outcome::{ActorError, Committed};
use super::store::Pending;

/// Who holds an id's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// Nobody: the first runtime to take it activates the id.
    Free,
    /// This runtime.
    Here,
    /// Another runtime, by node name.
    Node(String),
}

/// What became of a command forwarded to another runtime.
pub(crate) enum Forwarded<R> {
    /// It ran there (or failed there): its outcome.
    Done(Result<Committed, ActorError<R>>),
    /// Nothing ran: that runtime does not hold the id's lease (any more), or nobody answers
    /// for it (it is gone). The sender looks for the id again.
    NotHere,
}

/// Leases on ids and the way to the runtimes holding them.
pub(crate) trait Placement<A: EventSourced>: Send + Sync {
    /// Who holds `id`'s lease now, asked within `timeout`.
    fn owner(&self, id: &str, timeout: Duration) -> Pending<Owner>;
    /// Takes `id`'s lease for this runtime: `Owner::Here`, or who holds it.
    fn acquire(&self, id: &str) -> Pending<Owner>;
    /// Whether this runtime still holds `id`'s lease.
    fn holds(&self, id: &str) -> bool;
    /// Gives `id`'s lease up.
    fn release(&self, id: &str) -> Pending<()>;
    /// Gives up the leases of ids not in `active` (in the background).
    fn release_unused(&self, active: std::collections::HashSet<String>);
    /// Stops serving other runtimes: the commands they sent before are answered first
    /// (blocks until they are, or a timeout).
    fn stop_serving(&self);
    /// Stops renewing and gives every lease up (in the background).
    fn close(&self);
    /// Sends `command` for `id` to `node` and waits up to `timeout` for its outcome.
    fn forward(
        &self,
        node: &str,
        id: &str,
        command: &A::Command,
        timeout: Duration,
    ) -> Pending<Forwarded<A::Rejection>>;
}
