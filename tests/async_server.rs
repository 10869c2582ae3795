//! `AsyncServer`: callbacks that await (calls to other servers among them), several request
//! types each with its own reply type, deferred replies with the caller's monitor intact, and
//! `terminate` that awaits.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baobab::server::{AsyncMsg, AsyncServer, CallError, Handles, ReplyTo, Request};
use baobab::supervisor::{ChildSpec, Strategy, Supervisor, SupervisorSpec};
use baobab::{Addr, Ctx, ExitReason, Handled, Runtime};
use common::SAFETY;

const SECOND: Duration = Duration::from_secs(1);

/// A key-value store: two request types with different replies, and a cast.
#[derive(Default)]
struct Store(std::collections::HashMap<String, u64>);

struct Put(String, u64);
struct Get(String);
struct Len;

impl Request for Put {
    type Reply = Option<u64>;
}
impl Request for Get {
    type Reply = Option<u64>;
}
impl Request for Len {
    type Reply = usize;
}

impl AsyncServer for Store {
    type Cast = String;
    async fn handle_cast(&mut self, key: String, _: &mut Ctx<AsyncMsg<Self>>) -> Handled {
        self.0.remove(&key);
        Ok(())
    }
}

impl Handles<Put> for Store {
    async fn handle(
        &mut self,
        Put(key, value): Put,
        reply: ReplyTo<Option<u64>>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        reply.reply(self.0.insert(key, value));
        Ok(())
    }
}

impl Handles<Get> for Store {
    async fn handle(
        &mut self,
        Get(key): Get,
        reply: ReplyTo<Option<u64>>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        reply.reply(self.0.get(&key).copied());
        Ok(())
    }
}

impl Handles<Len> for Store {
    async fn handle(
        &mut self,
        _: Len,
        reply: ReplyTo<usize>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        reply.reply(self.0.len());
        Ok(())
    }
}

#[test]
fn several_request_types_each_get_their_own_reply_type() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let store = h.spawn(Store::default()).unwrap();
    assert_eq!(h.ask(&store, Put("a".into(), 1), SECOND), Ok(None));
    assert_eq!(h.ask(&store, Put("a".into(), 2), SECOND), Ok(Some(1)));
    assert_eq!(h.ask(&store, Put("b".into(), 3), SECOND), Ok(None));
    let len: usize = h.ask(&store, Len, SECOND).unwrap();
    assert_eq!(len, 2);
    h.tell(&store, "a".to_string()).unwrap();
    assert_eq!(h.ask(&store, Get("a".into()), SECOND), Ok(None));
    assert_eq!(h.ask(&store, Get("b".into()), SECOND), Ok(Some(3)));
}

/// A front server whose handler calls the store (another server) and awaits it: the call that
/// panicked with "block_on called on a scheduler thread" from a synchronous handler.
struct Front {
    store: Addr<AsyncMsg<Store>>,
}

struct Total(Vec<String>);

impl Request for Total {
    type Reply = u64;
}

impl AsyncServer for Front {
    type Cast = ();
}

impl Handles<Total> for Front {
    async fn handle(
        &mut self,
        Total(keys): Total,
        reply: ReplyTo<u64>,
        ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        let mut total = 0;
        for key in keys {
            match ctx.ask(&self.store, Get(key), SECOND).await {
                Ok(value) => total += value.unwrap_or(0),
                Err(error) => return Err(ExitReason::error(error.to_string())),
            }
        }
        reply.reply(total);
        Ok(())
    }
}

#[test]
fn a_handler_awaits_calls_to_another_server() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let store = h.spawn(Store::default()).unwrap();
    for (key, value) in [("x", 10), ("y", 20), ("z", 30)] {
        h.ask(&store, Put(key.into(), value), SECOND).unwrap();
    }
    let front = h.spawn(Front { store }).unwrap();
    let keys = |ks: &[&str]| Total(ks.iter().map(|k| k.to_string()).collect());
    assert_eq!(h.ask(&front, keys(&["x", "y", "z", "w"]), SECOND), Ok(60));
    // From inside a process too, and many at once.
    let totals = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let mut totals = vec![];
            for _ in 0..100 {
                totals.push(ctx.ask(&front, keys(&["x", "z"]), SECOND).await.unwrap());
            }
            totals
        })
        .unwrap();
    assert!(totals.iter().all(|&t| t == 40));
    // The store dies: the front's awaited call fails, and the front stops with that.
    let watch = h.watch(front.pid());
    h.exit(store.pid(), ExitReason::Kill);
    assert!(matches!(
        h.ask(&front, keys(&["x"]), SECOND),
        Err(CallError::NoProc { .. })
    ));
    assert!(matches!(watch.wait(), ExitReason::Error(_)));
}

/// A barrier: `Wait` is answered only when `Open` comes, by a later callback (OTP's noreply
/// and gen_server:reply/2).
#[derive(Default)]
struct Gate {
    waiting: Vec<ReplyTo<&'static str>>,
}

struct Wait;
struct Open;
struct Crash;

impl Request for Wait {
    type Reply = &'static str;
}
impl Request for Open {
    type Reply = usize;
}
impl Request for Crash {
    type Reply = ();
}

impl AsyncServer for Gate {
    type Cast = ();
}

impl Handles<Wait> for Gate {
    async fn handle(
        &mut self,
        _: Wait,
        reply: ReplyTo<&'static str>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        self.waiting.push(reply);
        Ok(())
    }
}

impl Handles<Open> for Gate {
    async fn handle(
        &mut self,
        _: Open,
        reply: ReplyTo<usize>,
        _: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        let n = self.waiting.len();
        for waiter in self.waiting.drain(..) {
            waiter.reply("open");
        }
        reply.reply(n);
        Ok(())
    }
}

impl Handles<Crash> for Gate {
    async fn handle(&mut self, _: Crash, _: ReplyTo<()>, _: &mut Ctx<AsyncMsg<Self>>) -> Handled {
        Err(ExitReason::error("gate broke"))
    }
}

#[test]
fn a_deferred_reply_is_answered_from_a_later_callback() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let gate = h.spawn(Gate::default()).unwrap();
    let waiters: Vec<_> = (0..5)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || h.ask(&gate, Wait, SAFETY))
        })
        .collect();
    // All five wait inside the server before it opens.
    let start = Instant::now();
    loop {
        let queued = h.process_info(gate.pid()).unwrap().monitored_by.len();
        if queued == 5 && h.process_info(gate.pid()).unwrap().mailbox_len == 0 {
            break;
        }
        assert!(start.elapsed() < SAFETY);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(h.ask(&gate, Open, SECOND), Ok(5));
    for waiter in waiters {
        assert_eq!(waiter.join().unwrap(), Ok("open"));
    }
}

#[test]
fn a_caller_waiting_on_a_deferred_reply_sees_the_server_exit_at_once() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let gate = h.spawn(Gate::default()).unwrap();
    let waiter = {
        let h = h.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            (h.ask(&gate, Wait, Duration::from_secs(30)), start.elapsed())
        })
    };
    while h.process_info(gate.pid()).unwrap().monitored_by.is_empty() {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(10));
    // The gate stops (a handler's error) while holding the waiter's ReplyTo.
    assert!(matches!(
        h.ask(&gate, Crash, SECOND),
        Err(CallError::NoProc { .. })
    ));
    let (answer, waited) = waiter.join().unwrap();
    assert_eq!(
        answer,
        Err(CallError::NoProc {
            pid: gate.pid(),
            reason: ExitReason::error("gate broke")
        })
    );
    assert!(
        waited < Duration::from_secs(5),
        "the monitor, not the timeout: {waited:?}"
    );
}

/// Messages that arrive while a callback awaits are handled after it, in order.
struct Slow {
    log: Arc<Mutex<Vec<String>>>,
}

struct Step(u32);

impl Request for Step {
    type Reply = ();
}

impl AsyncServer for Slow {
    type Cast = u32;

    async fn init(&mut self, ctx: &mut Ctx<AsyncMsg<Self>>) -> Handled {
        // Trap exits, so a supervisor's shutdown reaches `terminate`.
        ctx.trap_exit(true);
        ctx.register("slow")
            .map_err(|e| ExitReason::error(e.to_string()))
    }

    async fn handle_cast(&mut self, n: u32, _: &mut Ctx<AsyncMsg<Self>>) -> Handled {
        self.log.lock().unwrap().push(format!("cast {n}"));
        Ok(())
    }

    async fn terminate(&mut self, reason: &ExitReason, ctx: &mut Ctx<AsyncMsg<Self>>) {
        // `terminate` may await too.
        ctx.sleep(Duration::from_millis(5)).await;
        self.log.lock().unwrap().push(format!("terminate {reason}"));
    }
}

impl Handles<Step> for Slow {
    async fn handle(
        &mut self,
        Step(n): Step,
        reply: ReplyTo<()>,
        ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        self.log.lock().unwrap().push(format!("start {n}"));
        ctx.sleep(Duration::from_millis(20)).await;
        self.log.lock().unwrap().push(format!("end {n}"));
        reply.reply(());
        Ok(())
    }
}

#[test]
fn messages_wait_while_a_callback_awaits_and_terminate_awaits_under_a_supervisor() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let child_log = Arc::clone(&log);
    let spec =
        SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::worker("slow", move |start| {
            start.spawn(Slow {
                log: Arc::clone(&child_log),
            })
        }));
    let sup = Supervisor::start(&h, spec).unwrap();
    let slow: Addr<AsyncMsg<Slow>> = loop {
        if let Some(addr) = h.whereis("slow") {
            break addr;
        }
        std::thread::yield_now();
    };
    let caller = {
        let h = h.clone();
        std::thread::spawn(move || h.ask(&slow, Step(1), SECOND))
    };
    // The cast arrives while `Step(1)` sleeps inside its handler.
    while log.lock().unwrap().is_empty() {
        std::thread::yield_now();
    }
    h.tell(&slow, 7).unwrap();
    caller.join().unwrap().unwrap();
    h.ask(&slow, Step(2), SECOND).unwrap();
    let watch = h.watch(sup.pid());
    h.exit(sup.pid(), ExitReason::Shutdown);
    watch.wait();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start 1",
            "end 1",
            "cast 7",
            "start 2",
            "end 2",
            "terminate shutdown"
        ]
    );
}

#[test]
fn an_async_server_is_called_from_a_tokio_task() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let store = h.spawn(Store::default()).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (old, now) = tokio.block_on(async move {
        let old = h.ask_async(&store, Put("k".into(), 1), SECOND).await;
        let now = h.ask_async(&store, Get("k".into()), SECOND).await;
        (old, now)
    });
    assert_eq!((old, now), (Ok(None), Ok(Some(1))));
}

/// A server whose handler panics or stops: `terminate` runs with that reason, as after a
/// gen_server callback that raises.
struct Fragile {
    log: Arc<Mutex<Vec<String>>>,
}

struct Boom(bool);

impl Request for Boom {
    type Reply = ();
}

impl AsyncServer for Fragile {
    type Cast = ();
    async fn terminate(&mut self, reason: &ExitReason, _: &mut Ctx<AsyncMsg<Self>>) {
        self.log.lock().unwrap().push(format!("terminate {reason}"));
    }
}

impl Handles<Boom> for Fragile {
    async fn handle(
        &mut self,
        Boom(panic): Boom,
        _: ReplyTo<()>,
        ctx: &mut Ctx<AsyncMsg<Self>>,
    ) -> Handled {
        ctx.sleep(Duration::from_millis(1)).await;
        if panic {
            panic!("handler broke");
        }
        ctx.stop(ExitReason::error("stopped"))
    }
}

#[test]
fn terminate_runs_after_a_handler_panics_or_stops() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    for (panic, reason) in [
        (true, ExitReason::Panic("handler broke".into())),
        (false, ExitReason::error("stopped")),
    ] {
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let server = h
            .spawn(Fragile {
                log: Arc::clone(&log),
            })
            .unwrap();
        let watch = h.watch(server.pid());
        assert_eq!(
            h.ask(&server, Boom(panic), SECOND),
            Err(CallError::NoProc {
                pid: server.pid(),
                reason: reason.clone()
            })
        );
        assert_eq!(watch.wait(), reason);
        assert_eq!(*log.lock().unwrap(), [format!("terminate {reason}")]);
    }
}
