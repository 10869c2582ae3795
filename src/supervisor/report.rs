//! What supervisors report, as OTP's supervisor reports: a child that terminated, a start
//! that failed, and giving up at the restart intensity. See `process/crash.rs`.

use crate::{CrashReport, CrashSource, Ctx, ExitReason, Pid};

/// Child `child` (`pid`, restarted `restarts` times before) exited with `reason`.
pub(super) fn child_terminated<M: Send + 'static>(
    ctx: &Ctx<M>,
    child: &str,
    pid: Pid,
    reason: &ExitReason,
    restarts: u32,
) {
    ctx.report_crash(|| CrashReport {
        pid,
        reason: reason.clone(),
        source: CrashSource::Supervisor {
            supervisor: ctx.pid(),
            child: child.to_owned(),
            restarts,
        },
    });
}

/// Child `child` could not be started: `reason`.
pub(super) fn start_error<M: Send + 'static>(ctx: &Ctx<M>, child: &str, reason: &ExitReason) {
    ctx.report_crash(|| CrashReport {
        pid: ctx.pid(),
        reason: reason.clone(),
        source: CrashSource::StartError {
            child: child.to_owned(),
        },
    });
}

/// Restarting `child`, which exited with `reason`, would exceed the intensity.
pub(super) fn gave_up<M: Send + 'static>(ctx: &Ctx<M>, child: &str, reason: &ExitReason) {
    ctx.report_crash(|| CrashReport {
        pid: ctx.pid(),
        reason: reason.clone(),
        source: CrashSource::IntensityReached {
            child: child.to_owned(),
        },
    });
}
