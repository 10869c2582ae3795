//! The Redis bridge (feature `redis`): jobs in Redis in the Hero or rhailib wire format, taken
//! with reliable fetch so that a runner's death loses no job, and a client to submit jobs and
//! read their results. See `docs/wire-format.md`.

mod client;
mod connection;
mod control;
mod keys;
mod reaper;
mod results;
mod runner;
mod stops;
mod store;
mod take;
mod wire;

pub use client::{Client, QueueInfo};
pub use control::{JobFilter, JobPage, JobSummary, RunnerInfo};
pub use keys::{Keys, Profile};
pub use runner::{Runner, RunnerConfig, RunnerError, WIND_DOWN_MARGIN};
pub use stops::StopRoute;
pub use store::{MAX_DEAD_JOBS, MAX_FIELD_BYTES, RedisConfig, RedisStore};

/// Reads an ISO 8601 UTC time as the wire format writes them (`2026-11-27T01:02:03.456Z`,
/// fractions optional), or seconds since the epoch.
pub fn parse_iso8601(text: &str) -> Option<std::time::SystemTime> {
    wire::parse_time(text)
}

/// Writes a time as the wire format does: ISO 8601 UTC to the millisecond
/// (`2026-11-27T01:02:03.456Z`).
pub fn format_iso8601(time: std::time::SystemTime) -> String {
    wire::iso8601(time)
}
