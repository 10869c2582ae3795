//! Backpressure: a bounded mailbox with `Overflow::Wait` makes senders wait for room (from a
//! process, from a thread, from async code), and a long mailbox gives a warning.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baobab::{
    Addr, Ctx, Handle, MailboxConfig, Message, Overflow, Runtime, SendError, SpawnOptions,
};

fn bounded(capacity: usize, overflow: Overflow) -> SpawnOptions {
    SpawnOptions::new().mailbox(MailboxConfig::Bounded { capacity, overflow })
}

/// A consumer that takes nothing until the returned sender lets it go, then records every
/// number it gets, with the longest mailbox it saw, and sends them back on `Done`.
#[derive(Debug)]
enum Msg {
    N(u32),
    Done(std::sync::mpsc::Sender<(Vec<u32>, usize)>),
}

fn consumer(handle: &Handle, capacity: usize) -> (Addr<Msg>, std::sync::mpsc::Sender<()>) {
    let (go, gate) = std::sync::mpsc::channel::<()>();
    let addr = handle
        .spawn_with(
            move |mut ctx: Ctx<Msg>| async move {
                let _ = ctx.blocking(move || gate.recv()).await;
                let mut seen = Vec::new();
                let mut longest = 0;
                loop {
                    let info = ctx.handle().process_info(ctx.pid()).unwrap();
                    longest = longest.max(info.mailbox_len);
                    match ctx.recv().await {
                        Message::User(Msg::N(n)) => seen.push(n),
                        Message::User(Msg::Done(report)) => {
                            report.send((seen, longest)).unwrap();
                            return;
                        }
                        _ => {}
                    }
                }
            },
            bounded(capacity, Overflow::Wait),
        )
        .unwrap()
        .addr;
    (addr, go)
}

fn finish(handle: &Handle, consumer: &Addr<Msg>) -> (Vec<u32>, usize) {
    let (tx, rx) = std::sync::mpsc::channel();
    handle.send_blocking(consumer, Msg::Done(tx)).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

#[test]
fn a_plain_send_to_a_full_wait_mailbox_fails_with_mailbox_full() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let (c, _go) = consumer(h, 2);
    h.send(&c, Msg::N(1)).unwrap();
    h.send(&c, Msg::N(2)).unwrap();
    assert_eq!(h.send(&c, Msg::N(3)), Err(SendError::MailboxFull(c.pid())));
}

#[test]
fn send_blocking_waits_for_room_and_returns_once_the_owner_takes_a_message() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let (c, go) = consumer(&h, 2);
    h.send_blocking(&c, Msg::N(1)).unwrap();
    h.send_blocking(&c, Msg::N(2)).unwrap();
    let returned = Arc::new(AtomicBool::new(false));
    let sender = {
        let (h, returned) = (h.clone(), Arc::clone(&returned));
        std::thread::spawn(move || {
            h.send_blocking(&c, Msg::N(3)).unwrap();
            returned.store(true, Ordering::SeqCst);
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !returned.load(Ordering::SeqCst),
        "the third send must wait: the mailbox holds two and its owner takes none"
    );
    go.send(()).unwrap();
    sender.join().unwrap();
    assert!(returned.load(Ordering::SeqCst));
    let (seen, longest) = finish(&h, &c);
    assert_eq!(seen, [1, 2, 3]);
    assert!(longest <= 2, "the bound was exceeded: {longest}");
}

#[test]
fn many_waiting_senders_from_processes_and_threads_lose_nothing_and_keep_the_bound() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let (c, go) = consumer(&h, 3);
    go.send(()).unwrap();
    // Four processes and four threads, 500 numbers each, through a mailbox of 3.
    let watches: Vec<_> = (0..4u32)
        .map(|p| {
            let sender = h
                .spawn(move |ctx: Ctx<()>| async move {
                    for n in 0..500 {
                        ctx.send_wait(&c, Msg::N(p * 1000 + n)).await.unwrap();
                    }
                })
                .unwrap();
            h.watch(sender.pid())
        })
        .collect();
    let threads: Vec<_> = (4..8u32)
        .map(|t| {
            let h = h.clone();
            std::thread::spawn(move || {
                for n in 0..500 {
                    h.send_blocking(&c, Msg::N(t * 1000 + n)).unwrap();
                }
            })
        })
        .collect();
    for watch in watches {
        assert!(watch.wait().is_normal());
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let (seen, longest) = finish(&h, &c);
    assert_eq!(seen.len(), 8 * 500);
    assert!(longest <= 3, "the bound was exceeded: {longest}");
    // Each sender's numbers arrive in the order it sent them.
    for sender in 0..8u32 {
        let mine: Vec<u32> = seen
            .iter()
            .copied()
            .filter(|n| n / 1000 == sender)
            .collect();
        assert_eq!(
            mine,
            (0..500).map(|n| sender * 1000 + n).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_sender_waiting_for_a_process_that_dies_is_released() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let (c, _go) = consumer(&h, 1);
    h.send(&c, Msg::N(1)).unwrap();
    let before = h.stats().messages_dropped;
    let sender = {
        let h = h.clone();
        std::thread::spawn(move || h.send_blocking(&c, Msg::N(2)))
    };
    std::thread::sleep(Duration::from_millis(50));
    h.exit(c.pid(), baobab::ExitReason::Kill);
    // The send is dropped and counted, as a send to a dead process is.
    assert_eq!(sender.join().unwrap(), Ok(()));
    assert_eq!(h.stats().messages_dropped, before + 1);
    // And to a pid that is gone already.
    assert_eq!(h.send_blocking(&c, Msg::N(3)), Ok(()));
}

#[test]
fn a_waiting_process_still_dies_of_an_exit_signal() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let (c, _go) = consumer(&h, 1);
    h.send(&c, Msg::N(1)).unwrap();
    let sender = h
        .spawn(move |ctx: Ctx<()>| async move {
            let _ = ctx.send_wait(&c, Msg::N(2)).await;
        })
        .unwrap();
    let watch = h.watch(sender.pid());
    std::thread::sleep(Duration::from_millis(20));
    assert!(h.is_alive(sender.pid()));
    h.exit(sender.pid(), baobab::ExitReason::error("stop waiting"));
    assert_eq!(watch.wait(), baobab::ExitReason::error("stop waiting"));
}

#[test]
fn send_wait_to_other_mailboxes_is_a_send() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let idle = |options| {
        h.spawn_with(
            |mut ctx: Ctx<u32>| async move {
                let _ = ctx.recv_matching(|_| false).await;
            },
            options,
        )
        .unwrap()
        .addr
    };
    let reject = idle(bounded(1, Overflow::Reject));
    h.send_blocking(&reject, 1).unwrap();
    assert_eq!(
        h.send_blocking(&reject, 2),
        Err(SendError::MailboxFull(reject.pid()))
    );
    let drop_newest = idle(bounded(1, Overflow::DropNewest));
    h.send_blocking(&drop_newest, 1).unwrap();
    assert_eq!(h.send_blocking(&drop_newest, 2), Ok(()));
    assert_eq!(
        h.process_info(drop_newest.pid()).unwrap().mailbox_dropped,
        1
    );
    let unbounded = idle(SpawnOptions::new());
    for n in 0..100 {
        h.send_blocking(&unbounded, n).unwrap();
    }
    assert_eq!(h.process_info(unbounded.pid()).unwrap().mailbox_len, 100);
}

#[test]
#[should_panic(expected = "send_blocking called on a scheduler thread")]
fn send_blocking_on_a_scheduler_thread_panics_instead_of_stalling_it() {
    let rt = Runtime::builder().threads(1).build();
    let (c, _go) = consumer(rt.handle(), 1);
    let result = rt.block_on(move |ctx: Ctx<()>| async move {
        let h = ctx.handle();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            h.send_blocking(&c, Msg::N(1))
        }))
        .map_err(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    if let Ok(Err(message)) = result {
        panic!("{message}");
    }
}

/// A mailbox that grows to the threshold is counted (and logged) once, until the process has
/// worked it down and waited for more.
#[test]
fn a_long_mailbox_warns_once_until_the_process_works_it_down() {
    let rt = Runtime::builder()
        .threads(2)
        .long_message_queue(100)
        .build();
    let h = rt.handle().clone();
    let (unblock, blocked) = std::sync::mpsc::channel::<()>();
    let blocked = Arc::new(Mutex::new(blocked));
    // On 0 it blocks (a stuck handler) until the test lets it go.
    let slow = h
        .spawn(move |mut ctx: Ctx<u32>| async move {
            while let Message::User(n) = ctx.recv().await {
                if n == 0 {
                    let blocked = Arc::clone(&blocked);
                    ctx.blocking(move || blocked.lock().unwrap().recv().unwrap())
                        .await;
                }
            }
        })
        .unwrap();
    let stuck_with = |count: u32| {
        h.send(&slow, 0).unwrap();
        while h.process_info(slow.pid()).unwrap().mailbox_len > 0 {
            std::thread::yield_now();
        }
        for n in 1..=count {
            h.send(&slow, n).unwrap();
        }
    };
    stuck_with(250);
    assert_eq!(h.stats().long_queues, 1, "one warning for one long queue");
    unblock.send(()).unwrap();
    stuck_with(99);
    assert_eq!(h.stats().long_queues, 1, "under the threshold");
    unblock.send(()).unwrap();
    while h.process_info(slow.pid()).unwrap().mailbox_len > 0 {
        std::thread::yield_now();
    }
    // Worked down and waiting again: the next long queue warns again.
    std::thread::sleep(Duration::from_millis(20));
    stuck_with(150);
    assert_eq!(h.stats().long_queues, 2);
    unblock.send(()).unwrap();
}

/// A process in a selective receive moves its inbox to its private queue at every wake-up:
/// the messages it skips still count.
#[test]
fn messages_a_selective_receive_skips_count_toward_the_long_queue() {
    let rt = Runtime::builder().threads(2).long_message_queue(50).build();
    let h = rt.handle().clone();
    let picky = h
        .spawn(|mut ctx: Ctx<u32>| async move {
            // Waits for a 0 that never comes, skipping everything else.
            let _ = ctx.recv_matching(|m| matches!(m, Message::User(0))).await;
        })
        .unwrap();
    for n in 1..=60 {
        h.send(&picky, n).unwrap();
        // Let it wake and move the inbox each time.
        std::thread::sleep(Duration::from_micros(200));
    }
    assert_eq!(h.process_info(picky.pid()).unwrap().mailbox_len, 60);
    assert_eq!(h.stats().long_queues, 1);
}

#[test]
fn a_process_sending_to_its_own_full_mailbox_gets_mailbox_full_instead_of_waiting() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    // The outcome comes back on a channel: the process may end before a watch could be set.
    let (outcome, result) = std::sync::mpsc::channel();
    rt.handle()
        .spawn_with(
            move |ctx: Ctx<u32>| async move {
                let me = ctx.addr();
                ctx.send_wait(&me, 1).await.unwrap();
                let second = match ctx.send_wait(&me, 2).await {
                    Err(SendError::MailboxFull(pid)) if pid == me.pid() => Ok(()),
                    other => Err(format!("{other:?}")),
                };
                outcome.send(second).unwrap();
            },
            bounded(1, Overflow::Wait),
        )
        .unwrap();
    assert_eq!(result.recv_timeout(Duration::from_secs(10)), Ok(Ok(())));
    // A capacity of 0 is taken as 1.
    let (c, go) = consumer(&h, 0);
    h.send(&c, Msg::N(1)).unwrap();
    assert_eq!(h.send(&c, Msg::N(2)), Err(SendError::MailboxFull(c.pid())));
    go.send(()).unwrap();
    let (seen, _) = finish(&h, &c);
    assert_eq!(seen, [1]);
}
