//! `baobab jobs`, `runners`, `retry` and `purge`: looking at and acting on the jobs and runners
//! in Redis.

use std::process::ExitCode;

use baobab::bridge::JobFilter;

use crate::args::{JobsArgs, PurgeArgs, RetryArgs, RunnersArgs};
use crate::submit::client;

fn failed(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("baobab: {error}");
    ExitCode::from(2)
}

/// `baobab jobs --redis URL [--actor A] [--status S] [--older-than SECS] …`.
pub(crate) fn jobs(args: JobsArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let filter = JobFilter {
        actor: args.actor.clone(),
        status: args.status.clone(),
        older_than: args.older_than,
        newer_than: args.newer_than,
    };
    let mut cursor = args.cursor;
    if !args.json {
        println!(
            "{:<36}  {:<10}  {:<20}  {:>8}  {:<24}  ERROR",
            "ID", "STATUS", "ACTOR", "ATTEMPTS", "UPDATED"
        );
    }
    loop {
        let page = match client.jobs(&filter, cursor, args.limit as usize) {
            Ok(page) => page,
            Err(error) => return failed(error),
        };
        for job in &page.jobs {
            if args.json {
                let line = serde_json::json!({
                    "id": job.id,
                    "status": job.status,
                    "actor": job.actor,
                    "attempts": job.attempts,
                    "created_at": job.created_at,
                    "updated_at": job.updated_at,
                    "error": job.error,
                });
                println!("{line}");
            } else {
                let error = job.error.as_deref().unwrap_or("");
                let error = error.lines().next().unwrap_or("");
                println!(
                    "{:<36}  {:<10}  {:<20}  {:>8}  {:<24}  {}",
                    job.id, job.status, job.actor, job.attempts, job.updated_at, error
                );
            }
        }
        cursor = page.cursor;
        if cursor == 0 || !args.all {
            break;
        }
    }
    if args.json {
        println!("{}", serde_json::json!({ "cursor": cursor }));
    } else if cursor != 0 {
        println!("more: --cursor {cursor}");
    }
    ExitCode::SUCCESS
}

/// `baobab runners --redis URL`.
pub(crate) fn runners(args: RunnersArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let runners = match client.runners() {
        Ok(runners) => runners,
        Err(error) => return failed(error),
    };
    if !args.json {
        println!(
            "{:<36}  {:<20}  {:<16}  {:>8}  {:>9}  {:>7}  {:>7}  {:>8}",
            "ID", "ACTOR", "HOST", "PID", "HEARTBEAT", "WORKERS", "RUNNING", "JOBS/S"
        );
    }
    for runner in &runners {
        let age = runner.heartbeat_age.map(|age| age.as_secs_f64());
        if args.json {
            let line = serde_json::json!({
                "id": runner.id,
                "actor": runner.actor,
                "host": runner.host,
                "pid": runner.pid,
                "heartbeat_age_s": age,
                "alive": age.is_some(),
                "workers": runner.workers,
                "running": runner.running,
                "done": runner.done,
                "jobs_per_s": runner.rate,
            });
            println!("{line}");
        } else {
            let age = age.map_or_else(|| "dead".to_string(), |age| format!("{age:.1}s"));
            println!(
                "{:<36}  {:<20}  {:<16}  {:>8}  {:>9}  {:>7}  {:>7}  {:>8.1}",
                runner.id,
                runner.actor,
                runner.host,
                runner.pid,
                age,
                runner.workers,
                runner.running,
                runner.rate
            );
        }
    }
    ExitCode::SUCCESS
}

/// `baobab retry ID | --dead --actor A`.
pub(crate) fn retry(args: RetryArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    if args.dead {
        let actor = args.actor.as_deref().expect("clap requires --actor");
        return match client.retry_dead(actor) {
            Ok(n) => {
                if args.json {
                    println!("{}", serde_json::json!({ "retried": n }));
                } else {
                    println!("{n} dead jobs of {actor} queued again");
                }
                ExitCode::SUCCESS
            }
            Err(error) => failed(error),
        };
    }
    let id = args.job_id.as_deref().expect("clap requires an id");
    match client.retry(id, args.actor.as_deref()) {
        Ok(true) => {
            if args.json {
                println!("{}", serde_json::json!({ "id": id, "retried": true }));
            } else {
                println!("{id} queued again");
            }
            ExitCode::SUCCESS
        }
        Ok(false) => {
            if args.json {
                println!("{}", serde_json::json!({ "id": id, "retried": false }));
            }
            eprintln!("baobab: {id}: no such job, or it has not ended in error");
            ExitCode::from(1)
        }
        Err(error) => failed(error),
    }
}

/// `baobab purge --dead --actor A | --finished [--actor A]`.
pub(crate) fn purge(args: PurgeArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut dead = 0;
    let mut finished = 0;
    if args.dead {
        let actor = args.actor.as_deref().expect("clap requires --actor");
        match client.purge_dead(actor) {
            Ok(n) => dead = n,
            Err(error) => return failed(error),
        }
    }
    if args.finished {
        match client.purge_finished(args.actor.as_deref()) {
            Ok(n) => finished = n,
            Err(error) => return failed(error),
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({ "dead": dead, "finished": finished })
        );
    } else {
        println!("deleted {dead} dead and {finished} finished jobs");
    }
    ExitCode::SUCCESS
}
