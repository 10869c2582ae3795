//! `baobab submit FILE... --redis URL`: queues jobs in Redis, and waits for them if asked.

use std::process::ExitCode;
use std::time::Duration;

use baobab::jobs::Job;
use indicatif::ProgressBar;

use crate::args::{RedisArgs, SubmitArgs};
use baobab::script::read_source;

use crate::files::{Found, collect};
use crate::table::{Row, fill, print_table};

pub(crate) fn client(args: &RedisArgs) -> Result<baobab::bridge::Client, ExitCode> {
    let Some(url) = &args.redis else {
        eprintln!("baobab: --redis URL is required");
        return Err(ExitCode::from(2));
    };
    baobab::bridge::Client::new(url, args.profile).map_err(|error| {
        eprintln!("baobab: {error}");
        ExitCode::from(2)
    })
}

pub(crate) fn job_json(file: Option<&str>, job: &Job) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "id": job.id,
        "status": job.status.as_str(),
        "output": job.output,
        "error": job.error,
        "log": job.log,
        "time_ms": job.run_time().map(|t| t.as_secs_f64() * 1000.0),
        "retries": job.retries,
        "attempts": job.attempts,
        "errors": job.errors,
    })
}

/// `baobab submit FILE... --redis URL --actor ID [--wait]`.
pub(crate) fn submit(args: SubmitArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let files = match collect(&args.paths) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    };
    let files_to_run = files
        .iter()
        .filter(|found| matches!(found, Found::File(_)))
        .count();
    if args.id.is_some() && files_to_run != 1 {
        eprintln!("baobab: --id names one job: give one file ({files_to_run} given)");
        return ExitCode::from(2);
    }
    let mut submitted = Vec::new();
    let mut failed = 0;
    for found in &files {
        let file = match found {
            Found::File(file) => file,
            Found::Skipped(path, why) => {
                eprintln!("baobab: {}: skipped: {why}", path.display());
                continue;
            }
        };
        let name = file.display().to_string();
        let job = read_source(file, args.max_script_size)
            .map_err(|e| e.to_string())
            .and_then(|script| {
                let mut builder = Job::builder(script)
                    .caller_id("baobab-cli")
                    .actor_id(&args.actor)
                    .timeout(Duration::from_secs(args.timeout))
                    .retries(args.retries)
                    .max_script_bytes(args.max_script_size);
                if let Some(backoff) = args.backoff {
                    builder = builder.backoff(backoff);
                }
                builder = builder.priority(args.priority);
                for id in &args.prerequisites {
                    builder = builder.prerequisite(id);
                }
                if let Some(id) = &args.id {
                    builder = builder.id(id);
                }
                if let Some(at) = args.at {
                    builder = builder.run_at(at);
                } else if let Some(delay) = args.delay {
                    builder = builder.run_at(std::time::SystemTime::now() + delay);
                }
                for (name, value) in &args.env {
                    builder = builder.env(name, value);
                }
                builder.build().map_err(|e| e.to_string())
            });
        match job.and_then(|job| client.submit(job).map_err(|e| e.to_string())) {
            Ok(id) => submitted.push((name, id)),
            Err(error) => {
                failed += 1;
                eprintln!("baobab: {name}: {error}");
            }
        }
    }
    if !args.wait {
        for (name, id) in &submitted {
            if args.json {
                println!("{}", serde_json::json!({"file": name, "id": id}));
            } else {
                println!("{id}  {name}");
            }
        }
        return if failed > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        };
    }
    let progress = if submitted.len() >= 20 {
        ProgressBar::new(submitted.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for (name, id) in &submitted {
        let wait = Duration::from_secs(args.timeout + 60);
        let row = match client.await_result(id, wait) {
            Ok(job) => {
                if args.json {
                    progress.suspend(|| println!("{}", job_json(Some(name), &job)));
                }
                let mut row = Row {
                    file: name.clone(),
                    id: Some(id.clone()),
                    status: String::new(),
                    time: None,
                    text: String::new(),
                    failed: false,
                    log: Vec::new(),
                };
                fill(&mut row, Some(job));
                row
            }
            Err(error) => Row {
                file: name.clone(),
                id: Some(id.clone()),
                status: "unknown".into(),
                time: None,
                text: error.to_string(),
                failed: true,
                log: Vec::new(),
            },
        };
        failed += usize::from(row.failed);
        rows.push(row);
        progress.inc(1);
    }
    progress.finish_and_clear();
    if !args.json {
        print_table(&rows, args.show_log);
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
