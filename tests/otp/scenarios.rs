//! The baobab side of each differential scenario: the same steps as `<name>.escript`, printing
//! the same normalised trace (roles by letter, reasons as Erlang spells them).

use std::time::Duration;

use baobab::{Ctx, ExitReason, Message, Runtime};

type Trace = Vec<String>;

/// Runs scenario `name` on a fresh runtime and returns its trace.
pub fn run(name: &str) -> Trace {
    let rt = Runtime::builder().threads(2).build();
    let trace = match name {
        "link_error" => rt.block_on(link_error),
        "link_normal_ignored" => rt.block_on(link_normal_ignored),
        "trap_normal_and_error" => rt.block_on(trap_normal_and_error),
        "kill_trapper" => rt.block_on(kill_trapper),
        "self_kill_reaches_links_as_kill" => rt.block_on(self_kill_reaches_links_as_kill),
        "link_dead_with_trap" => rt.block_on(link_dead_with_trap),
        "link_dead_without_trap" => rt.block_on(link_dead_without_trap),
        "monitor_dead" => rt.block_on(monitor_dead),
        "demonitor_flush" => rt.block_on(demonitor_flush),
        "exit_normal_to_non_trapping" => rt.block_on(exit_normal_to_non_trapping),
        "exit_normal_to_trapping" => rt.block_on(exit_normal_to_trapping),
        "exit_self_normal" => rt.block_on(exit_self_normal),
        "chain" => rt.block_on(chain),
        "unlink_before_crash" => rt.block_on(unlink_before_crash),
        "ordering" => rt.block_on(ordering),
        "shutdown_term" => rt.block_on(shutdown_term),
        "name_released" => rt.block_on(name_released),
        other => panic!("no scenario {other}"),
    };
    trace.unwrap_or_else(|reason| vec![format!("driver exited: {reason}")])
}

fn boom() -> ExitReason {
    ExitReason::error("boom")
}

/// Waits for the Down of `pid` and returns its reason.
async fn down_of<M: Send + 'static>(ctx: &mut Ctx<M>, pid: baobab::Pid) -> ExitReason {
    loop {
        if let Message::Down(down) = ctx.recv().await
            && down.pid == pid
        {
            return down.reason;
        }
    }
}

/// Waits for a trapped exit from `pid` and returns its reason.
async fn exit_from<M: Send + 'static>(ctx: &mut Ctx<M>, pid: baobab::Pid) -> ExitReason {
    loop {
        if let Message::Exit(signal) = ctx.recv().await
            && signal.from == pid
        {
            return signal.reason;
        }
    }
}

async fn forever<M: Send + 'static>(mut ctx: Ctx<M>) {
    while ctx.recv_timeout(Duration::from_secs(3600)).await.is_some() {}
}

async fn link_error(mut ctx: Ctx<()>) -> Trace {
    ctx.trap_exit(true);
    let b = ctx.spawn_link(|_c: Ctx<()>| async { boom() }).unwrap();
    let reason = exit_from(&mut ctx, b.pid()).await;
    vec![format!("a got EXIT from b: {reason}")]
}

async fn link_normal_ignored(mut ctx: Ctx<String>) -> Trace {
    let me = ctx.addr();
    let (a, _) = ctx
        .spawn_monitor(move |mut ctx: Ctx<()>| async move {
            let (b, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
            ctx.link(b.pid());
            let reason = down_of(&mut ctx, b.pid()).await;
            ctx.send(&me, reason.to_string()).unwrap();
            let _go = ctx.recv_matching(|m| *m == Message::User(&())).await;
            ExitReason::error("finished")
        })
        .unwrap();
    let mut trace = vec![];
    if let Message::User(reason) = ctx.recv().await {
        trace.push(format!("a saw b down: {reason}"));
    }
    ctx.send(&a, ()).unwrap();
    trace.push(format!("a exited: {}", down_of(&mut ctx, a.pid()).await));
    trace
}

async fn trap_normal_and_error(mut ctx: Ctx<()>) -> Trace {
    ctx.trap_exit(true);
    let b = ctx.spawn_link(|_c: Ctx<()>| async {}).unwrap();
    let first = exit_from(&mut ctx, b.pid()).await;
    let c = ctx.spawn_link(|_c: Ctx<()>| async { boom() }).unwrap();
    let second = exit_from(&mut ctx, c.pid()).await;
    vec![
        format!("got EXIT from b: {first}"),
        format!("got EXIT from c: {second}"),
    ]
}

async fn kill_trapper(mut ctx: Ctx<()>) -> Trace {
    ctx.trap_exit(true);
    let me = ctx.addr();
    let b = ctx
        .spawn_link(move |ctx: Ctx<()>| async move {
            ctx.trap_exit(true);
            ctx.send(&me, ()).unwrap();
            forever(ctx).await;
        })
        .unwrap();
    let _ready = ctx.recv_matching(|m| *m == Message::User(&())).await;
    ctx.exit(b.pid(), ExitReason::Kill);
    vec![format!(
        "got EXIT from b: {}",
        exit_from(&mut ctx, b.pid()).await
    )]
}

async fn self_kill_reaches_links_as_kill(mut ctx: Ctx<()>) -> Trace {
    ctx.trap_exit(true);
    let m = ctx
        .spawn_link(|ctx: Ctx<()>| async move {
            ctx.spawn_link(|c: Ctx<()>| async move {
                let now = true;
                if now {
                    c.stop(ExitReason::Kill)
                }
            })
            .unwrap();
            forever(ctx).await;
        })
        .unwrap();
    vec![format!(
        "middle exited: {}",
        exit_from(&mut ctx, m.pid()).await
    )]
}

async fn link_dead_with_trap(mut ctx: Ctx<()>) -> Trace {
    let (d, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
    down_of(&mut ctx, d.pid()).await;
    ctx.trap_exit(true);
    ctx.link(d.pid());
    vec![format!(
        "got EXIT from dead: {}",
        exit_from(&mut ctx, d.pid()).await
    )]
}

async fn link_dead_without_trap(mut ctx: Ctx<()>) -> Trace {
    let (d, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
    down_of(&mut ctx, d.pid()).await;
    let dead = d.pid();
    let (a, _) = ctx
        .spawn_monitor(move |ctx: Ctx<()>| async move {
            ctx.link(dead);
            ExitReason::error("survived")
        })
        .unwrap();
    vec![format!("a exited: {}", down_of(&mut ctx, a.pid()).await)]
}

async fn monitor_dead(mut ctx: Ctx<()>) -> Trace {
    let (d, _) = ctx
        .spawn_monitor(|_c: Ctx<()>| async { ExitReason::error("gone") })
        .unwrap();
    let first = down_of(&mut ctx, d.pid()).await;
    ctx.monitor(d.pid());
    let second = down_of(&mut ctx, d.pid()).await;
    vec![
        format!("first down: {first}"),
        format!("second down: {second}"),
    ]
}

async fn demonitor_flush(mut ctx: Ctx<()>) -> Trace {
    let (d, _) = ctx.spawn_monitor(|_c: Ctx<()>| async {}).unwrap();
    down_of(&mut ctx, d.pid()).await;
    let again = ctx.monitor(d.pid());
    ctx.demonitor(again, true);
    let line = match ctx.recv_timeout(Duration::from_millis(50)).await {
        Some(Message::Down(_)) => "down still queued",
        _ => "no down after flush",
    };
    vec![line.to_owned()]
}

async fn exit_normal_to_non_trapping(mut ctx: Ctx<()>) -> Trace {
    let (a, _) = ctx
        .spawn_monitor(|mut ctx: Ctx<()>| async move {
            ctx.recv_matching(|m| *m == Message::User(&())).await;
            ExitReason::error("stopped")
        })
        .unwrap();
    ctx.exit(a.pid(), ExitReason::Normal);
    ctx.send(&a, ()).unwrap();
    vec![format!("a exited: {}", down_of(&mut ctx, a.pid()).await)]
}

async fn exit_normal_to_trapping(mut ctx: Ctx<(bool, String)>) -> Trace {
    let me = ctx.addr();
    let driver = ctx.pid();
    let a = ctx
        .spawn(move |mut ctx: Ctx<()>| async move {
            ctx.trap_exit(true);
            ctx.send(&me, (false, "ready".into())).unwrap();
            if let Message::Exit(signal) = ctx.recv().await {
                ctx.send(&me, (signal.from == driver, signal.reason.to_string()))
                    .unwrap();
            }
        })
        .unwrap();
    let _ready = ctx.recv().await;
    ctx.exit(a.pid(), ExitReason::Normal);
    match ctx.recv().await {
        Message::User((from_driver, reason)) => {
            vec![format!("a got EXIT from driver {from_driver}: {reason}")]
        }
        other => vec![format!("unexpected {other:?}")],
    }
}

async fn exit_self_normal(mut ctx: Ctx<()>) -> Trace {
    let (a, _) = ctx
        .spawn_monitor(|ctx: Ctx<()>| async move {
            ctx.exit(ctx.pid(), ExitReason::Normal);
            forever(ctx).await;
        })
        .unwrap();
    vec![format!("a exited: {}", down_of(&mut ctx, a.pid()).await)]
}

async fn chain(mut ctx: Ctx<()>) -> Trace {
    let (a, _) = ctx
        .spawn_monitor(|ctx: Ctx<()>| async move {
            ctx.spawn_link(|ctx: Ctx<()>| async move {
                ctx.spawn_link(|_c: Ctx<()>| async { boom() }).unwrap();
                forever(ctx).await;
            })
            .unwrap();
            forever(ctx).await;
        })
        .unwrap();
    vec![format!("a exited: {}", down_of(&mut ctx, a.pid()).await)]
}

async fn unlink_before_crash(mut ctx: Ctx<()>) -> Trace {
    let b = ctx
        .spawn_link(|mut ctx: Ctx<()>| async move {
            ctx.recv().await;
            boom()
        })
        .unwrap();
    ctx.unlink(b.pid());
    ctx.monitor(b.pid());
    ctx.send(&b, ()).unwrap();
    let reason = down_of(&mut ctx, b.pid()).await;
    vec![format!("b down: {reason}"), "driver alive: true".to_owned()]
}

async fn ordering(mut ctx: Ctx<u32>) -> Trace {
    ctx.trap_exit(true);
    let me = ctx.addr();
    let b = ctx
        .spawn_link(move |ctx: Ctx<()>| async move {
            for n in 1..=5 {
                ctx.send(&me, n).unwrap();
            }
            boom()
        })
        .unwrap();
    let mut trace = vec![];
    loop {
        match ctx.recv().await {
            Message::User(n) => trace.push(format!("message {n}")),
            Message::Exit(signal) if signal.from == b.pid() => {
                trace.push(format!("EXIT from b: {}", signal.reason));
                return trace;
            }
            _ => {}
        }
    }
}

async fn shutdown_term(mut ctx: Ctx<()>) -> Trace {
    ctx.trap_exit(true);
    let restart = || ExitReason::shutdown_with("restart");
    let b = ctx
        .spawn_link(move |_c: Ctx<()>| async move { restart() })
        .unwrap();
    let first = exit_from(&mut ctx, b.pid()).await;
    let (c, _) = ctx
        .spawn_monitor(move |ctx: Ctx<()>| async move {
            ctx.spawn_link(move |_c: Ctx<()>| async move { restart() })
                .unwrap();
            forever(ctx).await;
        })
        .unwrap();
    let second = down_of(&mut ctx, c.pid()).await;
    vec![
        format!("got EXIT from b: {first}"),
        format!("non-trapping link exited: {second}"),
    ]
}

async fn name_released(mut ctx: Ctx<()>) -> Trace {
    let me = ctx.addr();
    let (a, _) = ctx
        .spawn_monitor(move |mut ctx: Ctx<()>| async move {
            ctx.register("svc").unwrap();
            ctx.send(&me, ()).unwrap();
            ctx.recv().await;
        })
        .unwrap();
    let _registered = ctx.recv().await;
    let before = ctx.whereis::<()>("svc") == Some(a);
    ctx.send(&a, ()).unwrap();
    down_of(&mut ctx, a.pid()).await;
    let after = match ctx.whereis::<()>("svc") {
        Some(_) => "defined",
        None => "undefined",
    };
    vec![
        format!("whereis before: {before}"),
        format!("whereis after: {after}"),
    ]
}
