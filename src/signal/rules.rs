//! What an exit signal does to the process that receives it: OTP's table, as a pure function.

use super::ExitReason;
use crate::pid::Pid;

/// How the signal was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignalKind {
    /// A linked process exited.
    Link,
    /// Someone called `exit(pid, reason)`.
    Exit,
    /// The runtime itself stops the process (runtime shutdown, a panic in its blocking work):
    /// not trappable, and no process sent it.
    Forced,
}

/// The receiver's fate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing happens.
    Ignore,
    /// The signal becomes an `Exit` message (the receiver traps exits).
    Deliver,
    /// The receiver dies with this reason.
    Die(ExitReason),
}

/// OTP's rules:
/// - `exit(pid, kill)` cannot be trapped: the receiver dies with `killed`.
/// - A process that traps exits gets every other signal as a message, `normal` included.
/// - Otherwise `normal` is ignored, except `exit(self(), normal)`, which ends the caller.
/// - Otherwise the receiver dies with the signal's reason (a link's `kill` stays `kill`).
pub(crate) fn on_exit_signal(
    kind: SignalKind,
    reason: &ExitReason,
    from: Pid,
    receiver: Pid,
    trap_exit: bool,
) -> Action {
    match kind {
        SignalKind::Forced => Action::Die(reason.clone()),
        SignalKind::Exit if *reason == ExitReason::Kill => Action::Die(ExitReason::Killed),
        _ if trap_exit => Action::Deliver,
        SignalKind::Exit if reason.is_normal() && from == receiver => {
            Action::Die(ExitReason::Normal)
        }
        _ if reason.is_normal() => Action::Ignore,
        _ => Action::Die(reason.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Pid = Pid::new(1, 0);
    const B: Pid = Pid::new(2, 0);

    fn decide(kind: SignalKind, reason: ExitReason, trap: bool) -> Action {
        on_exit_signal(kind, &reason, A, B, trap)
    }

    #[test]
    fn normal_exit_of_a_link_is_ignored_without_trap_exit() {
        assert_eq!(
            decide(SignalKind::Link, ExitReason::Normal, false),
            Action::Ignore
        );
    }

    #[test]
    fn abnormal_reason_propagates_unchanged() {
        let reason = ExitReason::error("boom");
        assert_eq!(
            decide(SignalKind::Link, reason.clone(), false),
            Action::Die(reason)
        );
    }

    #[test]
    fn trap_exit_turns_every_signal_into_a_message() {
        for reason in [ExitReason::Normal, ExitReason::error("x"), ExitReason::Kill] {
            assert_eq!(decide(SignalKind::Link, reason, true), Action::Deliver);
        }
        assert_eq!(
            decide(SignalKind::Exit, ExitReason::Normal, true),
            Action::Deliver
        );
    }

    #[test]
    fn exit_kill_is_untrappable_and_becomes_killed() {
        assert_eq!(
            decide(SignalKind::Exit, ExitReason::Kill, true),
            Action::Die(ExitReason::Killed)
        );
        assert_eq!(
            decide(SignalKind::Exit, ExitReason::Kill, false),
            Action::Die(ExitReason::Killed)
        );
    }

    #[test]
    fn a_links_kill_reason_is_trappable_and_stays_kill() {
        assert_eq!(
            decide(SignalKind::Link, ExitReason::Kill, false),
            Action::Die(ExitReason::Kill)
        );
        assert_eq!(
            decide(SignalKind::Link, ExitReason::Kill, true),
            Action::Deliver
        );
    }

    #[test]
    fn exit_normal_to_another_non_trapping_process_does_nothing() {
        assert_eq!(
            decide(SignalKind::Exit, ExitReason::Normal, false),
            Action::Ignore
        );
    }

    #[test]
    fn exit_self_normal_ends_the_caller() {
        assert_eq!(
            on_exit_signal(SignalKind::Exit, &ExitReason::Normal, A, A, false),
            Action::Die(ExitReason::Normal)
        );
    }

    #[test]
    fn forced_stops_ignore_trap_exit() {
        assert_eq!(
            decide(SignalKind::Forced, ExitReason::Shutdown, true),
            Action::Die(ExitReason::Shutdown)
        );
    }
}
