//! Exit reasons, with OTP's names.

use std::fmt;
use std::sync::Arc;

/// Why a process exited, or the reason carried by an exit signal.
///
/// The variants are OTP's reasons. `Normal`, `Shutdown` and `ShutdownWith` are the "normal"
/// family for supervisors (a `transient` child is not restarted after them); only `Normal` is
/// ignored by a linked process that does not trap exits.
///
/// ```
/// use baobab::ExitReason;
/// assert!(ExitReason::Normal.is_normal());
/// assert!(ExitReason::error("disk full").is_abnormal());
/// assert_eq!(ExitReason::shutdown_with("restart").to_string(), "{shutdown,restart}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The process finished its work.
    Normal,
    /// The process was told to stop (by its supervisor or the runtime).
    Shutdown,
    /// `{shutdown, Term}`: a stop with a term attached; treated like `Shutdown`.
    ShutdownWith(Arc<str>),
    /// The untrappable reason given to [`exit`](crate::Ctx::exit): the target dies with `Killed`.
    /// A process that exits *itself* with `Kill` sends `Kill` to its links (as OTP does).
    Kill,
    /// The reason of a process that was killed with `Kill`.
    Killed,
    /// The process did not exist (link or monitor to a dead pid, call to a dead server).
    NoProc,
    /// The process panicked; the payload's message.
    Panic(Arc<str>),
    /// Any other reason, written by the user.
    Error(Arc<str>),
}

impl ExitReason {
    /// A user-defined reason.
    pub fn error(message: impl Into<String>) -> Self {
        ExitReason::Error(Arc::from(message.into()))
    }

    /// `{shutdown, term}`.
    pub fn shutdown_with(term: impl Into<String>) -> Self {
        ExitReason::ShutdownWith(Arc::from(term.into()))
    }

    /// True for `normal` only: the one reason a non-trapping linked process ignores.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Normal)
    }

    /// True for `normal`, `shutdown` and `{shutdown, _}`: the reasons after which a
    /// `transient` child is not restarted and that are not logged as crashes.
    pub fn is_clean(&self) -> bool {
        matches!(
            self,
            ExitReason::Normal | ExitReason::Shutdown | ExitReason::ShutdownWith(_)
        )
    }

    /// Anything but `normal`.
    pub fn is_abnormal(&self) -> bool {
        !self.is_normal()
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Normal => f.write_str("normal"),
            ExitReason::Shutdown => f.write_str("shutdown"),
            ExitReason::ShutdownWith(term) => write!(f, "{{shutdown,{term}}}"),
            ExitReason::Kill => f.write_str("kill"),
            ExitReason::Killed => f.write_str("killed"),
            ExitReason::NoProc => f.write_str("noproc"),
            ExitReason::Panic(message) => write!(f, "panic: {message}"),
            ExitReason::Error(message) => f.write_str(message),
        }
    }
}

impl From<()> for ExitReason {
    fn from((): ()) -> Self {
        ExitReason::Normal
    }
}

impl<E: Into<ExitReason>> From<Result<(), E>> for ExitReason {
    fn from(result: Result<(), E>) -> Self {
        match result {
            Ok(()) => ExitReason::Normal,
            Err(reason) => reason.into(),
        }
    }
}

/// Turns a panic payload into the text of an `ExitReason::Panic`.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> Arc<str> {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        Arc::from(*s)
    } else if let Some(s) = payload.downcast_ref::<String>() {
        Arc::from(s.as_str())
    } else {
        Arc::from("non-string panic payload")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_is_ignored_by_links() {
        assert!(ExitReason::Normal.is_normal());
        for reason in [
            ExitReason::Shutdown,
            ExitReason::shutdown_with("x"),
            ExitReason::Kill,
            ExitReason::Killed,
            ExitReason::NoProc,
            ExitReason::Panic("p".into()),
            ExitReason::error("e"),
        ] {
            assert!(reason.is_abnormal(), "{reason}");
        }
    }

    #[test]
    fn clean_reasons_are_normal_and_shutdowns() {
        assert!(ExitReason::Normal.is_clean());
        assert!(ExitReason::Shutdown.is_clean());
        assert!(ExitReason::shutdown_with("x").is_clean());
        assert!(!ExitReason::Killed.is_clean());
        assert!(!ExitReason::error("x").is_clean());
    }

    #[test]
    fn display_uses_erlang_spelling() {
        assert_eq!(ExitReason::shutdown_with("t").to_string(), "{shutdown,t}");
        assert_eq!(ExitReason::Panic("boom".into()).to_string(), "panic: boom");
        assert_eq!(ExitReason::NoProc.to_string(), "noproc");
    }

    #[test]
    fn unit_and_results_convert() {
        assert_eq!(ExitReason::from(()), ExitReason::Normal);
        let failed: Result<(), ExitReason> = Err(ExitReason::error("x"));
        assert_eq!(ExitReason::from(failed), ExitReason::error("x"));
    }
}
