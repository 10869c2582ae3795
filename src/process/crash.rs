//! Crash reports: what the runtime says when a process ends abnormally, as OTP's logger does
//! with its crash reports (from the process) and supervisor reports (from its supervisor).
//!
//! By default each report is a `tracing` event at `error` level; [`CrashReports`] turns them
//! off or hands them to a function of the user's.

use std::fmt;
use std::sync::Arc;

use tracing::error;

use crate::pid::Pid;
use crate::signal::ExitReason;

/// One abnormal exit, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// The process that ended.
    pub pid: Pid,
    /// Why it ended.
    pub reason: ExitReason,
    /// Who reports it (the process itself, or its supervisor), with what each knows.
    pub source: CrashSource,
}

/// Who reports a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrashSource {
    /// The process's own code ended it: a panic, an error returned or
    /// [`Ctx::stop`](crate::Ctx::stop) with a reason other than `normal`, `shutdown` or
    /// `{shutdown, _}` (OTP's crash report). A process killed by an exit signal from elsewhere
    /// makes no report of its own: whoever crashed first did.
    Process {
        /// Its registered name, if it had one.
        name: Option<String>,
        /// Messages left in its mailbox.
        mailbox_len: usize,
        /// Reductions (messages handled) it ran.
        reductions: u64,
    },
    /// The supervisor of a child that exited: a permanent child whatever the reason, another
    /// child unless the reason is `normal`, `shutdown` or `{shutdown, _}` (OTP's supervisor
    /// report, `child_terminated`).
    Supervisor {
        /// The supervisor.
        supervisor: Pid,
        /// The child's id in its spec.
        child: String,
        /// How often the supervisor had restarted this child before.
        restarts: u32,
    },
    /// A supervisor gives up: a restart would exceed its intensity (OTP's
    /// `reached_max_restart_intensity`), so it stops its children and exits with `shutdown`.
    /// The report's pid is the supervisor's and its reason the child's last exit reason.
    IntensityReached {
        /// The child whose exit was one too many.
        child: String,
    },
    /// A supervisor could not start (or restart) a child (OTP's `start_error`). The report's
    /// pid is the supervisor's and its reason why the start failed.
    StartError {
        /// The child.
        child: String,
    },
}

/// Where crash reports go; set with
/// [`Builder::crash_reports`](crate::Builder::crash_reports).
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use baobab::{CrashReports, ExitReason, Runtime};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = Arc::clone(&seen);
/// let rt = Runtime::builder()
///     .crash_reports(CrashReports::hook(move |report| {
///         sink.lock().unwrap().push(report.reason.clone());
///     }))
///     .build();
/// let crasher = rt.handle().spawn(|_ctx: baobab::Ctx<()>| async move {
///     ExitReason::error("disk full")
/// }).unwrap();
/// rt.handle().watch(crasher.pid()).wait();
/// assert_eq!(*seen.lock().unwrap(), [ExitReason::error("disk full")]);
/// ```
#[derive(Clone, Default)]
pub enum CrashReports {
    /// A `tracing` event at `error` level for each report (the default).
    #[default]
    Log,
    /// No reports.
    Off,
    /// Each report goes to this function, on the thread where the exit happened: keep it
    /// short and never block in it (it runs on a scheduler thread, where `Handle`'s blocking
    /// calls panic); send a message instead. A panic in it is logged and ignored.
    Hook(Arc<dyn Fn(&CrashReport) + Send + Sync>),
}

impl CrashReports {
    /// Reports go to `hook`.
    pub fn hook(hook: impl Fn(&CrashReport) + Send + Sync + 'static) -> Self {
        CrashReports::Hook(Arc::new(hook))
    }

    /// Makes `report`, if reports are on, and delivers it. A hook that panics is logged and
    /// otherwise ignored: the exit it reports goes on.
    pub(crate) fn report(&self, report: impl FnOnce() -> CrashReport) {
        match self {
            CrashReports::Off => {}
            CrashReports::Log => log(&report()),
            CrashReports::Hook(hook) => {
                let report = report();
                if let Err(payload) =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(&report)))
                {
                    tracing::warn!(
                        pid = %report.pid,
                        panic = %crate::signal::reason::panic_message(&*payload),
                        "the crash report hook panicked"
                    );
                }
            }
        }
    }
}

impl fmt::Debug for CrashReports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashReports::Log => f.write_str("Log"),
            CrashReports::Off => f.write_str("Off"),
            CrashReports::Hook(_) => f.write_str("Hook(..)"),
        }
    }
}

fn log(report: &CrashReport) {
    match &report.source {
        CrashSource::Process {
            name,
            mailbox_len,
            reductions,
        } => error!(
            pid = %report.pid,
            name = name.as_deref().unwrap_or(""),
            reason = %report.reason,
            mailbox_len,
            reductions,
            "crash report: a process exited"
        ),
        CrashSource::Supervisor {
            supervisor,
            child,
            restarts,
        } => error!(
            %supervisor,
            child = child.as_str(),
            pid = %report.pid,
            reason = %report.reason,
            restarts,
            "supervisor report: a child terminated"
        ),
        CrashSource::IntensityReached { child } => error!(
            supervisor = %report.pid,
            child = child.as_str(),
            reason = %report.reason,
            "supervisor report: reached_max_restart_intensity, shutting down"
        ),
        CrashSource::StartError { child } => error!(
            supervisor = %report.pid,
            child = child.as_str(),
            reason = %report.reason,
            "supervisor report: start_error"
        ),
    }
}
