//! Executor interop: `Handle`'s waits have async forms that tokio tasks await without blocking
//! a thread, and (feature `tokio`) a process awaits futures that need tokio's reactor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use baobab::server::{Server, ServerMsg};
use baobab::{
    Addr, Ctx, ExitReason, Handle, MailboxConfig, Message, Overflow, Runtime, SpawnOptions,
};

/// A server that doubles.
struct Doubler;

impl Server for Doubler {
    type Call = u64;
    type Reply = u64;
    type Cast = ();
    fn handle_call(&mut self, n: u64, _ctx: &mut Ctx<ServerMsg<Self>>) -> Result<u64, ExitReason> {
        Ok(n * 2)
    }
}

/// One tokio worker thread: a wait that blocked it would serialise every task.
fn one_thread_tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// 200 tokio tasks on one tokio thread each await a baobab process that sleeps 20 ms: they
/// overlap (well under 200 × 20 ms), so no await blocked the tokio thread.
#[test]
fn handle_run_is_awaited_from_tokio_without_blocking_its_thread() {
    let rt = Runtime::builder().threads(2).build();
    let tokio = one_thread_tokio();
    let h = rt.handle().clone();
    let started = Instant::now();
    let total: u64 = tokio.block_on(async move {
        let tasks: Vec<_> = (0..200u64)
            .map(|n| {
                let h = h.clone();
                tokio::spawn(async move {
                    h.run(move |mut ctx: Ctx<()>| async move {
                        ctx.sleep(Duration::from_millis(20)).await;
                        n
                    })
                    .await
                    .unwrap()
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    });
    assert_eq!(total, (0..200).sum::<u64>());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the waits did not overlap: {:?}",
        started.elapsed()
    );
}

#[test]
fn call_async_watch_and_send_wait_from_a_tokio_multi_thread_runtime() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let server: Addr<ServerMsg<Doubler>> = h.spawn(Doubler).unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    tokio.block_on(async move {
        // Calls.
        let calls: Vec<_> = (0..100u64)
            .map(|n| {
                let h = h.clone();
                tokio::spawn(async move { h.call_async(&server, n, Duration::from_secs(5)).await })
            })
            .collect();
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), Ok(n as u64 * 2));
        }
        // A call to a dead server says so.
        let watch = h.watch(server.pid());
        h.exit(server.pid(), ExitReason::Kill);
        assert_eq!(watch.await, ExitReason::Killed);
        assert!(matches!(
            h.call_async(&server, 1, Duration::from_secs(1)).await,
            Err(baobab::server::CallError::NoProc { .. })
        ));
        // A send that waits for room, then a watch awaited.
        let got = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&got);
        let consumer = h
            .spawn_with(
                move |mut ctx: Ctx<u32>| async move {
                    while let Message::User(n) = ctx.recv().await {
                        if n == 0 {
                            return;
                        }
                        ctx.sleep(Duration::from_micros(100)).await;
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                },
                SpawnOptions::new().mailbox(MailboxConfig::Bounded {
                    capacity: 2,
                    overflow: Overflow::Wait,
                }),
            )
            .unwrap()
            .addr;
        let watch = h.watch(consumer.pid());
        for n in 1..=200 {
            h.send_wait(&consumer, n).await.unwrap();
        }
        h.send_wait(&consumer, 0).await.unwrap();
        assert_eq!(watch.await, ExitReason::Normal);
        assert_eq!(got.load(Ordering::SeqCst), 200);
    });
}

#[test]
fn a_run_whose_process_crashes_gives_its_reason() {
    let rt = Runtime::builder().threads(2).build();
    let h: Handle = rt.handle().clone();
    let tokio = one_thread_tokio();
    let ended = tokio.block_on(async move {
        h.run(|_ctx: Ctx<()>| async move {
            if true {
                panic!("inside");
            }
        })
        .await
    });
    assert_eq!(ended, Err(ExitReason::Panic("inside".into())));
}

#[test]
fn an_exit_watch_waits_with_any_timeout_and_is_awaitable_once_done() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let p = h
        .spawn(|mut ctx: Ctx<()>| async move {
            let _ = ctx.recv().await;
            ExitReason::error("done")
        })
        .unwrap();
    let watch = h.watch(p.pid());
    assert_eq!(watch.exited(), None);
    assert_eq!(watch.wait_timeout(Duration::from_millis(10)), None);
    h.send(&p, ()).unwrap();
    // A timeout too long for the clock is no timeout, not a panic.
    assert_eq!(
        watch.wait_timeout(Duration::MAX),
        Some(ExitReason::error("done"))
    );
    assert_eq!(watch.exited(), Some(ExitReason::error("done")));
    let tokio = one_thread_tokio();
    assert_eq!(tokio.block_on(watch), ExitReason::error("done"));
    // A watch of a pid already gone says `noproc`.
    assert_eq!(tokio.block_on(h.watch(p.pid())), ExitReason::NoProc);
}

#[cfg(feature = "tokio")]
mod with_tokio {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server on `tokio`: its address.
    fn echo_server(tokio: &tokio::runtime::Runtime) -> std::net::SocketAddr {
        let listener = tokio
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        tokio.spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    loop {
                        let n = socket.read(&mut buffer).await.unwrap_or(0);
                        if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: std::net::SocketAddr, text: &'static [u8]) -> Vec<u8> {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(text).await.unwrap();
        let mut echoed = vec![0; text.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        echoed
    }

    #[test]
    fn processes_do_a_tcp_round_trip_on_the_users_tokio_runtime() {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let addr = echo_server(&tokio);
        let rt = Runtime::builder()
            .threads(2)
            .tokio(tokio.handle().clone())
            .build();
        // Fifty processes at once, on two scheduler threads.
        let watches: Vec<_> = (0..50)
            .map(|_| {
                let p = rt
                    .handle()
                    .spawn(move |mut ctx: Ctx<()>| async move {
                        let echoed = ctx.tokio(round_trip(addr, b"hello, baobab")).await;
                        assert_eq!(echoed, b"hello, baobab");
                    })
                    .unwrap();
                rt.handle().watch(p.pid())
            })
            .collect();
        for watch in watches {
            assert_eq!(
                watch.wait_timeout(Duration::from_secs(10)),
                Some(ExitReason::Normal)
            );
        }
    }

    #[test]
    fn processes_use_the_crates_own_tokio_runtime_when_given_none() {
        let tokio = tokio::runtime::Runtime::new().unwrap();
        let addr = echo_server(&tokio);
        let rt = Runtime::builder().threads(2).build();
        let echoed = rt
            .block_on(move |mut ctx: Ctx<()>| async move {
                ctx.tokio(round_trip(addr, b"no runtime given")).await
            })
            .unwrap();
        assert_eq!(echoed, b"no runtime given");
    }

    #[test]
    fn a_panic_in_the_future_ends_the_process_and_an_exit_aborts_the_task() {
        let rt = Runtime::builder().threads(2).build();
        let reason = rt.block_on(|mut ctx: Ctx<()>| async move {
            ctx.tokio(async {
                if true {
                    panic!("in tokio");
                }
            })
            .await
        });
        assert_eq!(reason, Err(ExitReason::Panic("in tokio".into())));

        // A process killed while it waits: its tokio task is dropped (aborted).
        struct Dropped(Arc<AtomicUsize>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicUsize::new(0));
        let flag = Arc::clone(&dropped);
        let waiter = rt
            .handle()
            .spawn(move |mut ctx: Ctx<()>| async move {
                let guard = Dropped(flag);
                ctx.tokio(async move {
                    let _guard = guard;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                })
                .await;
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let watch = rt.handle().watch(waiter.pid());
        rt.handle().exit(waiter.pid(), ExitReason::Kill);
        assert_eq!(watch.wait(), ExitReason::Killed);
        let deadline = Instant::now() + Duration::from_secs(5);
        while dropped.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "the tokio task was not aborted"
        );
    }
}
