//! Stopping children as OTP's supervisor does: monitor, unlink, tell, wait, and kill when the
//! shutdown timeout passes. Shared by supervisors and dynamic supervisors.

use std::time::Duration;

use super::spec::Shutdown;
use crate::{Ctx, ExitReason, Message, Pid};

/// Stops one child as its shutdown says and waits until it is gone; returns its exit reason.
pub(crate) async fn shut_down<M: Send + 'static>(
    ctx: &mut Ctx<M>,
    pid: Pid,
    shutdown: Shutdown,
) -> ExitReason {
    let mut reasons = shut_down_all(ctx, &[pid], shutdown).await;
    reasons.pop().expect("one reason per child")
}

/// Stops children as their shutdown says and waits until they are gone; returns their exit
/// reasons, in the order of `pids`. As OTP's `monitor_child`, each is monitored and unlinked
/// first, and an exit signal already on its way (the child died before the unlink) is taken:
/// the monitor then reports it. Then all are told at once (a dynamic supervisor's children
/// stop in no particular order), and each is waited for, killed if the shutdown timeout
/// passes. Monitoring before telling makes every `Down` come after the child is really gone.
pub(crate) async fn shut_down_all<M: Send + 'static>(
    ctx: &mut Ctx<M>,
    pids: &[Pid],
    shutdown: Shutdown,
) -> Vec<ExitReason> {
    let mut monitors = Vec::with_capacity(pids.len());
    for &pid in pids {
        monitors.push((pid, ctx.monitor(pid)));
        ctx.unlink(pid);
        let _ = ctx
            .recv_matching_timeout(
                |m| matches!(m, Message::Exit(signal) if signal.from == pid),
                Duration::ZERO,
            )
            .await;
    }
    let signal = match shutdown {
        Shutdown::BrutalKill => ExitReason::Kill,
        _ => ExitReason::Shutdown,
    };
    for &pid in pids {
        ctx.exit(pid, signal.clone());
    }
    let deadline = match shutdown {
        Shutdown::Timeout(timeout) => Some(ctx.now() + timeout),
        _ => None,
    };
    let mut reasons = Vec::with_capacity(pids.len());
    for (pid, monitor) in monitors {
        let down = |m: &Message<&M>| matches!(m, Message::Down(d) if d.reference == monitor);
        let reason_of = |m: Message<M>| match m {
            Message::Down(down) => down.reason,
            _ => unreachable!("only the child's Down is selected"),
        };
        let left = deadline.map(|deadline| deadline.saturating_sub(ctx.now()));
        let gone = match left {
            None => Some(ctx.recv_matching(down).await),
            Some(left) => ctx.recv_matching_timeout(down, left).await,
        };
        let down_message = match gone {
            Some(message) => message,
            None => {
                ctx.exit(pid, ExitReason::Kill);
                ctx.recv_matching(down).await
            }
        };
        reasons.push(reason_of(down_message));
    }
    reasons
}
