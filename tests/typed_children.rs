//! Typed children: a `ChildRef` follows its child through restarts (static and dynamic
//! children, nested supervisors), and a `Pid` becomes an `Addr<M>` only after a check that
//! tells a dead pid (`NoProc`) from a process of another type (`WrongType`).

mod common;

use std::time::Duration;

use baobab::server::{Server, ServerMsg};
use baobab::supervisor::{
    ChildSpec, DynamicSpec, DynamicSupervisor, Strategy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use baobab::{AddrError, Ctx, ExitReason, Handle, Message, Pid, Runtime, SendError};
use common::SAFETY;

const SECOND: Duration = Duration::from_secs(1);

/// Answers its own pid and `n + offset`.
struct Adder(u32);

impl Server for Adder {
    type Call = u32;
    type Reply = (Pid, u32);
    type Cast = ();
    fn handle_call(
        &mut self,
        n: u32,
        ctx: &mut Ctx<ServerMsg<Self>>,
    ) -> Result<(Pid, u32), ExitReason> {
        Ok((ctx.pid(), n + self.0))
    }
}

fn crash_and_wait(h: &Handle, pid: Pid) {
    let watch = h.watch(pid);
    h.exit(pid, ExitReason::error("crash"));
    assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::error("crash")));
}

#[test]
fn a_child_ref_reaches_a_static_child_after_each_restart() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(10, Duration::from_secs(60))
        .child(ChildSpec::worker("adder", |start| start.spawn(Adder(100))));
    let sup = Supervisor::start(h, spec).unwrap();
    let adder = sup.child_ref::<ServerMsg<Adder>>(h, "adder").unwrap();
    assert_eq!(adder.id(), "adder");
    let mut previous = None;
    for round in 0..3 {
        let addr = adder.addr().unwrap();
        let (pid, sum) = h.call(&addr, round, SECOND).unwrap();
        assert_eq!(sum, round + 100);
        assert_ne!(Some(pid), previous, "a new process after each restart");
        previous = Some(pid);
        crash_and_wait(h, pid);
        // A request to the supervisor is answered after the exit before it: restarted by then.
        sup.child_ref::<ServerMsg<Adder>>(h, "adder").unwrap();
    }
    // Stopped for good: no address, and a send says which child is missing.
    rt.block_on(
        move |mut ctx: Ctx<()>| async move { sup.terminate_child(&mut ctx, "adder").await },
    )
    .unwrap()
    .unwrap();
    assert!(matches!(adder.addr(), Err(AddrError::NoProc(_))));
    assert_eq!(adder.pid(), None);
    assert_eq!(
        adder.send(ServerMsg::Cast(())),
        Err(SendError::NoName("adder".into()))
    );
}

#[test]
fn a_child_ref_of_the_wrong_type_says_so_and_an_unknown_id_is_not_found() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::worker("adder", |start| start.spawn(Adder(1))));
    let sup = Supervisor::start(h, spec).unwrap();
    let wrong = sup.child_ref::<String>(h, "adder").unwrap();
    match wrong.addr() {
        Err(AddrError::WrongType {
            expected, actual, ..
        }) => {
            assert!(expected.contains("String"), "{expected}");
            assert!(actual.contains("ServerMsg"), "{actual}");
        }
        other => panic!("WrongType expected, got {other:?}"),
    }
    assert!(matches!(
        wrong.send("x".into()),
        Err(SendError::WrongType { .. })
    ));
    assert!(matches!(
        sup.child_ref::<u32>(h, "nobody"),
        Err(baobab::supervisor::SupervisorError::NotFound(_))
    ));
}

#[test]
fn a_nested_supervisor_has_a_handle_that_follows_its_restarts() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let inner = || {
        SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::worker("adder", |start| start.spawn(Adder(7))))
    };
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(5, Duration::from_secs(60))
        .child(ChildSpec::supervisor("inner", inner()));
    let top = Supervisor::start(h, spec).unwrap();
    let inner_ref = top.child_ref::<SupervisorMsg>(h, "inner").unwrap();
    for _ in 0..2 {
        let inner_sup = inner_ref.supervisor().unwrap();
        let adder = inner_sup.child_ref::<ServerMsg<Adder>>(h, "adder").unwrap();
        assert_eq!(h.call(&adder.addr().unwrap(), 1, SECOND).unwrap().1, 8);
        // The inner supervisor is killed (it traps exits); the top restarts it, and a new
        // adder with it.
        let watch = h.watch(inner_sup.pid());
        h.exit(inner_sup.pid(), ExitReason::Kill);
        assert_eq!(watch.wait_timeout(SAFETY), Some(ExitReason::Killed));
        top.child_ref::<SupervisorMsg>(h, "inner").unwrap();
        assert_ne!(inner_ref.supervisor().unwrap().pid(), inner_sup.pid());
    }
}

#[test]
fn a_dynamic_child_ref_follows_its_restarts() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let spec = DynamicSpec::worker("adder", |start, offset: u32| start.spawn(Adder(offset)))
        .intensity(10, Duration::from_secs(60));
    let sup = DynamicSupervisor::start(&h, spec).unwrap();
    let (a, b) = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            let a = sup
                .start_child_ref::<ServerMsg<Adder>, _>(&mut ctx, 10)
                .await
                .unwrap();
            let b = sup
                .start_child_ref::<ServerMsg<Adder>, _>(&mut ctx, 20)
                .await
                .unwrap();
            (a, b)
        })
        .unwrap();
    let first = a.pid().unwrap();
    crash_and_wait(&h, first);
    // Ask the supervisor anything: it has restarted the child by the time it answers.
    rt.block_on(move |mut ctx: Ctx<()>| async move { sup.count_children(&mut ctx).await })
        .unwrap()
        .unwrap();
    let (pid, sum) = h.call(&a.addr().unwrap(), 1, SECOND).unwrap();
    assert_ne!(pid, first);
    assert_eq!(sum, 11, "restarted with its own arguments");
    assert_eq!(h.call(&b.addr().unwrap(), 1, SECOND).unwrap().1, 21);
    // Terminated: the reference knows it is gone.
    rt.block_on(move |mut ctx: Ctx<()>| async move { sup.terminate_child(&mut ctx, pid).await })
        .unwrap()
        .unwrap();
    assert!(matches!(a.addr(), Err(AddrError::NoProc(_))));
}

#[test]
fn a_pid_becomes_an_addr_only_for_its_own_type() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle();
    let numbers = h
        .spawn(|mut ctx: Ctx<u64>| async move { while let Message::User(_) = ctx.recv().await {} })
        .unwrap();
    let pid = numbers.pid();
    assert_eq!(h.addr_of::<u64>(pid), Ok(numbers));
    assert_eq!(
        h.addr_of::<String>(pid),
        Err(AddrError::WrongType {
            pid,
            expected: "alloc::string::String",
            actual: "u64",
        })
    );
    assert_eq!(h.process_info(pid).unwrap().message_type, "u64");
    // From inside a process, too.
    let inside = rt
        .block_on(move |ctx: Ctx<()>| async move {
            (
                ctx.addr_of::<u64>(pid).is_ok(),
                ctx.addr_of::<u8>(pid).is_err(),
            )
        })
        .unwrap();
    assert_eq!(inside, (true, true));
    // A dead pid is NoProc, not WrongType.
    let watch = h.watch(pid);
    h.exit(pid, ExitReason::Kill);
    watch.wait();
    assert_eq!(h.addr_of::<u64>(pid), Err(AddrError::NoProc(pid)));
    assert_eq!(h.addr_of::<String>(pid), Err(AddrError::NoProc(pid)));
}

#[test]
fn a_child_started_later_comes_with_its_reference() {
    let rt = Runtime::builder().threads(2).build();
    let h = rt.handle().clone();
    let sup = Supervisor::start(&h, SupervisorSpec::new(Strategy::OneForOne)).unwrap();
    let adder = rt
        .block_on(move |mut ctx: Ctx<()>| async move {
            sup.start_child_ref::<ServerMsg<Adder>, _>(
                &mut ctx,
                ChildSpec::worker("late", |start| start.spawn(Adder(5))),
            )
            .await
        })
        .unwrap()
        .unwrap();
    let first = adder.pid().unwrap();
    assert_eq!(
        h.call(&adder.addr().unwrap(), 1, SECOND).unwrap(),
        (first, 6)
    );
    crash_and_wait(&h, first);
    // Between the exit and the restart the reference may see the child stopped, with its
    // last pid; after a request to the supervisor it sees the new one.
    if let Err(error) = adder.addr() {
        assert_eq!(error, AddrError::NoProc(first));
    }
    sup.child_ref::<ServerMsg<Adder>>(&h, "late").unwrap();
    assert_ne!(adder.pid().unwrap(), first);
}
