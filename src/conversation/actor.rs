//! The conversation process: it traps exits, links to its participants, forwards requests to
//! them, applies the crash policy when one exits, enforces the conversation's timeout and,
//! when the conversation ends, stops the participants it owns.
//!
//! It keeps nothing of its own: everything lives in the shared [`Core`], so the incarnation
//! its supervisor starts after a crash goes on where the crashed one stopped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use super::core::{AfterExit, Core};
use super::error::ConversationError;
use super::participant::ParticipantRequest;
use crate::signal::reason::panic_message;
use crate::supervisor::{Shutdown, shut_down_all};
use crate::{Addr, Ctx, ExitReason, Message, TimerRef};

/// How long an owned participant has to stop when its conversation ends before it is killed.
const PARTICIPANT_SHUTDOWN: Duration = Duration::from_secs(5);

/// What a conversation process receives.
pub(crate) enum ConvMsg {
    /// Requests are queued: forward them.
    Kick,
    /// The conversation is closing: tear down.
    Close,
    /// The conversation's timeout may have passed.
    Deadline,
}

pub(crate) async fn run(mut ctx: Ctx<ConvMsg>, core: Arc<Core>) -> ExitReason {
    // Trap first, then link: a participant that is already dead becomes an `EXIT` message
    // with reason `noproc`, never the death of the conversation.
    ctx.trap_exit(true);
    let attach = core.attach(ctx.addr(), ctx.now());
    if attach.ended {
        return teardown(&mut ctx, &core, None).await;
    }
    for &pid in &attach.links {
        ctx.link(pid);
    }
    core.ready.fill(());
    let mut timer = None;
    if let Some(deadline) = attach.deadline {
        let now = ctx.now();
        if now >= deadline {
            core.deadline_passed(now);
            return teardown(&mut ctx, &core, None).await;
        }
        timer = Some(ctx.send_after(&ctx.addr(), ConvMsg::Deadline, deadline - now));
    }
    if attach.closing {
        return teardown(&mut ctx, &core, timer).await;
    }
    send_all(&ctx, &core, core.forward(ctx.now()));
    loop {
        match ctx.recv().await {
            Message::User(ConvMsg::Kick) => send_all(&ctx, &core, core.forward(ctx.now())),
            Message::User(ConvMsg::Close) => {
                if core.closing() {
                    return teardown(&mut ctx, &core, timer).await;
                }
            }
            Message::User(ConvMsg::Deadline) => {
                if core.deadline_passed(ctx.now()) {
                    return teardown(&mut ctx, &core, timer).await;
                }
            }
            Message::Exit(signal) if signal.from == ctx.parent() => {
                core.fail(ConversationError::SupervisorDown);
                teardown(&mut ctx, &core, timer).await;
                return signal.reason;
            }
            Message::Exit(signal) => {
                let mut after = core.participant_exited(signal.from, &signal.reason, ctx.now());
                if let AfterExit::Compensate(callback, crash) = after {
                    let replies = catch_unwind(AssertUnwindSafe(|| callback(&crash)))
                        .map_err(|payload| panic_message(&*payload).to_string());
                    after = core.compensated(&crash, replies, ctx.now());
                }
                match after {
                    AfterExit::Ignored => {
                        debug!(conversation = %core.id, from = %signal.from, reason = %signal.reason,
                            "exit signal from no live participant ignored");
                    }
                    AfterExit::Continue(sends) => send_all(&ctx, &core, sends),
                    AfterExit::Compensate(..) => unreachable!("compensated above"),
                    AfterExit::Failed => return teardown(&mut ctx, &core, timer).await,
                }
            }
            Message::Down(_) => {}
        }
    }
}

fn send_all(
    ctx: &Ctx<ConvMsg>,
    core: &Core,
    sends: Vec<(Addr<ParticipantRequest>, ParticipantRequest)>,
) {
    for (to, request) in sends {
        // A dead participant drops it; its exit signal brings the crash policy.
        if let Err(error) = ctx.send(&to, request) {
            warn!(conversation = %core.id, participant = %to.pid(), %error,
                "request not delivered; it stays unanswered");
        }
    }
}

/// The conversation has ended (closing, failed, or its supervisor stops it): the participants
/// it spawned are stopped and waited for, the others unlinked (so its exit touches none of
/// them), and the state is finished.
async fn teardown(ctx: &mut Ctx<ConvMsg>, core: &Core, timer: Option<TimerRef>) -> ExitReason {
    if let Some(timer) = timer {
        ctx.cancel_timer(timer);
    }
    let (owned, others) = core.members_for_teardown();
    for pid in others {
        ctx.unlink(pid);
    }
    let reasons = shut_down_all(ctx, &owned, Shutdown::Timeout(PARTICIPANT_SHUTDOWN)).await;
    core.stopped(&owned, reasons, ctx.now());
    core.finish();
    ExitReason::Normal
}
