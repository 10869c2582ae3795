//! Conversations: an ask/reply exchange, then a participant that crashes under each crash
//! policy (`Fail`, `RouteToNext`, `Compensate`), and a crash of the conversation process
//! itself, which its supervisor restarts with the conversation's state. Prints what happens;
//! exits non-zero if anything goes otherwise.
//!
//! ```text
//! cargo run --example conversation
//! ```

use std::sync::Arc;
use std::time::Duration;

use baobab::conversation::{
    ChannelMode, ConversationError, ConversationSupervisor, CrashPolicy, Envelope, LogEntry,
    ParticipantBehaviour, Phase,
};
use baobab::{ExitReason, Runtime};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A participant that answers `name: <request>`, and crashes when asked to.
fn participant(name: &'static str) -> Arc<dyn ParticipantBehaviour> {
    Arc::new(move |request: &Envelope| {
        let text = request.text().unwrap_or_default();
        if text == "crash" {
            panic!("{name} was asked to crash");
        }
        Some(
            request
                .reply("answer.v1", format!("{name}: {text}"))
                .with_publisher(name),
        )
    })
}

fn ask(text: &str) -> Envelope {
    Envelope::new("question.v1", text.to_string()).with_publisher("example")
}

fn main() {
    // One line per panic (the participants' crashes are the point here), not a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("  [panic] {info}")));
    let rt = Runtime::new();
    let conversations = ConversationSupervisor::start(rt.handle()).expect("supervisor");
    let spawn = |policy: CrashPolicy| {
        conversations
            .spawn_with_participants(
                vec![participant("alice"), participant("bob")],
                Some(Duration::from_secs(60)),
                ChannelMode::Ephemeral,
                policy,
            )
            .expect("conversation")
    };

    println!("== ask / reply");
    let (conversation, _) = spawn(CrashPolicy::Fail);
    let question = ask("what time is it?");
    let reply = conversation.ask(question.clone(), TIMEOUT).expect("reply");
    println!(
        "asked {:?}, {} replied {:?} (parent {})",
        question.text().unwrap(),
        reply.publisher_id,
        reply.text().unwrap(),
        reply.causal.unwrap().parent_id
    );
    assert_eq!(reply.text(), Some("alice: what time is it?"));
    assert_eq!(reply.causal.unwrap().parent_id, question.message_id);
    conversation.close().expect("close");
    println!("phase after close: {:?}", conversation.query_state().phase);

    println!("\n== CrashPolicy::Fail");
    let (conversation, _) = spawn(CrashPolicy::Fail);
    match conversation.ask(ask("crash"), Duration::from_secs(60)) {
        Err(ConversationError::ParticipantCrashed {
            participant,
            reason,
        }) => println!("the ask returned at once: participant {participant} crashed ({reason})"),
        other => panic!("expected a crash, got {other:?}"),
    }
    assert_eq!(conversation.query_state().phase, Phase::Failed);
    println!(
        "phase: {:?}; a later send: {:?}",
        conversation.query_state().phase,
        conversation.send(ask("hello?")).unwrap_err().to_string()
    );

    println!("\n== CrashPolicy::RouteToNext");
    let (conversation, _) = spawn(CrashPolicy::RouteToNext);
    let reply = conversation.ask(ask("crash"), TIMEOUT);
    // alice crashed on it; bob took the request over, and crashed on it too: nobody is left.
    println!("alice and bob both crashed on it: {:?}", reply.unwrap_err());
    let (conversation, pids) = spawn(CrashPolicy::RouteToNext);
    rt.handle().exit(pids[0], ExitReason::Kill);
    let reply = conversation
        .ask(ask("who is there?"), TIMEOUT)
        .expect("bob answers");
    println!("alice was killed; {:?}", reply.text().unwrap());
    assert_eq!(reply.text(), Some("bob: who is there?"));
    conversation.close().expect("close");

    println!("\n== CrashPolicy::Compensate");
    let (conversation, _) = spawn(CrashPolicy::compensate(|crash| {
        println!(
            "compensating {} unanswered request(s) of {} ({})",
            crash.unanswered.len(),
            crash.participant,
            crash.reason
        );
        crash
            .unanswered
            .iter()
            .map(|request| request.reply("cancelled.v1", "cancelled"))
            .collect()
    }));
    let reply = conversation
        .ask(ask("crash"), TIMEOUT)
        .expect("a compensation");
    println!("the ask got {:?}", reply.text().unwrap());
    assert_eq!(reply.text(), Some("cancelled"));
    let reply = conversation.ask(ask("still there?"), TIMEOUT).expect("bob");
    println!("then {:?}", reply.text().unwrap());
    assert_eq!(reply.text(), Some("bob: still there?"));
    conversation.close().expect("close");

    println!("\n== the conversation process crashes");
    let (conversation, _) = spawn(CrashPolicy::Fail);
    conversation.send(ask("first")).expect("send");
    // Let alice's reply reach the conversation's queue before the process is killed.
    wait_until("the reply is queued", || {
        conversation.query_state().pending_replies == 1
    });
    let before = conversation.pid().expect("pid");
    let watch = rt.handle().watch(before);
    rt.handle().exit(before, ExitReason::Kill);
    watch.wait();
    // The supervisor restarts the conversation asynchronously, after the exit signal.
    wait_until("the conversation is restarted", || {
        conversation.query_state().restarts == 1
    });
    let reply = conversation
        .receive_timeout(TIMEOUT)
        .expect("the reply survived");
    let state = conversation.query_state();
    println!(
        "killed {before}; restarted as {} ({} restart); the queued reply survived: {:?}",
        state.pid.unwrap(),
        state.restarts,
        reply.text().unwrap()
    );
    assert!(
        state
            .log
            .iter()
            .any(|e| matches!(e, LogEntry::Restarted { .. }))
    );
    conversation.close().expect("close");

    assert_eq!(conversations.open_conversations(), 0);
    conversations.shutdown();
    println!("\nall conversations closed or failed; none left open");
}

/// Polls `done` until it holds, panicking after five seconds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}
