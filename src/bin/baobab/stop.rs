//! `baobab stop JOB_ID --redis URL`.

use std::process::ExitCode;

use crate::args::StopArgs;
use crate::submit::client;

/// `baobab stop JOB_ID --redis URL [--actor ID] [--wait SECS]`.
pub(crate) fn stop(args: StopArgs) -> ExitCode {
    let client = match client(&args.redis) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.stop(&args.job_id, args.actor.as_deref()) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("baobab: no job {}", args.job_id);
            return ExitCode::from(1);
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            return ExitCode::from(2);
        }
    }
    let Some(wait) = args.wait else {
        println!("stop requested for {}", args.job_id);
        return ExitCode::SUCCESS;
    };
    match client.await_result(&args.job_id, wait) {
        Ok(job) => {
            match &job.error {
                Some(error) => println!("{}: {} ({error})", job.id, job.status),
                None => println!("{}: {}", job.id, job.status),
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("baobab: {error}");
            ExitCode::from(1)
        }
    }
}
