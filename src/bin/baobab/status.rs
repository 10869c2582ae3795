//! `baobab status JOB_ID --redis URL`.

use std::process::ExitCode;

use crate::args::{QueuesArgs, StatusArgs};
use crate::submit::{client, job_json};

/// `baobab status JOB_ID --redis URL`.
pub(crate) fn status(args: StatusArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.get(&args.job_id) {
        Ok(Some(job)) => {
            if args.json {
                println!("{}", job_json(None, &job));
            } else {
                println!("id:     {}", job.id);
                println!("status: {}", job.status);
                if let Some(output) = &job.output {
                    println!("output: {output}");
                }
                if let Some(error) = &job.error {
                    println!("error:  {error}");
                }
                if job.attempts > 0 || job.retries > 0 {
                    println!("runs:   {} (retries {})", job.attempts, job.retries);
                }
                if let Some(at) = job.run_at.filter(|_| !job.status.is_final()) {
                    println!("run at: {}", baobab::bridge::format_iso8601(at));
                }
                if !job.errors.is_empty() {
                    println!("errors:");
                    for failed in &job.errors {
                        println!("  #{} {} {}", failed.attempt, failed.at, failed.error);
                    }
                }
                if !job.log.is_empty() {
                    println!("log:");
                    for line in &job.log {
                        println!("  {line}");
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("baobab: no job {}", args.job_id);
            ExitCode::from(1)
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            ExitCode::from(2)
        }
    }
}

/// `baobab queues --redis URL`.
pub(crate) fn queues(args: QueuesArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let queues = match client.queues() {
        Ok(queues) => queues,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        for queue in &queues {
            let line = serde_json::json!({
                "actor": queue.actor,
                "queued": queue.queued,
                "delayed": queue.delayed,
                "running": queue.running,
                "dead": queue.dead,
                "runners": queue.runners,
            });
            println!("{line}");
        }
    } else {
        println!(
            "{:<32}  {:>8}  {:>8}  {:>8}  {:>8}  {:>7}",
            "ACTOR", "QUEUED", "DELAYED", "RUNNING", "DEAD", "RUNNERS"
        );
        for queue in &queues {
            println!(
                "{:<32}  {:>8}  {:>8}  {:>8}  {:>8}  {:>7}",
                queue.actor, queue.queued, queue.delayed, queue.running, queue.dead, queue.runners
            );
        }
    }
    ExitCode::SUCCESS
}
