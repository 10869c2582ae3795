//! The table of jobs and their results.

use std::time::Duration;

use baobab::jobs::{Job, JobStatus};

/// One row of the table: the file and what became of its job.
pub(crate) struct Row {
    pub(crate) file: String,
    pub(crate) id: Option<String>,
    pub(crate) status: String,
    pub(crate) time: Option<Duration>,
    pub(crate) text: String,
    pub(crate) failed: bool,
    /// What the job's script printed.
    pub(crate) log: Vec<String>,
}

/// The status of a row whose path is not a file to run.
const SKIPPED: &str = "skipped";
/// The status of a row whose job never ran.
const NOT_RUN: &str = "not run";

impl Row {
    /// A file whose job was refused before it was queued.
    pub(crate) fn refused(file: String, why: String) -> Row {
        Row {
            file,
            id: None,
            status: JobStatus::Error.to_string(),
            time: None,
            text: why,
            failed: true,
            log: Vec::new(),
        }
    }

    /// A path that is not a regular file: not run, and not a failure.
    pub(crate) fn skipped(file: String, why: String) -> Row {
        Row {
            file,
            id: None,
            status: SKIPPED.into(),
            time: None,
            text: why,
            failed: false,
            log: Vec::new(),
        }
    }

    /// A file not read: the run was interrupted first.
    pub(crate) fn not_run(file: String) -> Row {
        Row {
            file,
            id: None,
            status: NOT_RUN.into(),
            time: None,
            text: "interrupted before it was queued".into(),
            failed: true,
            log: Vec::new(),
        }
    }

    /// Whether the row is a skipped path.
    pub(crate) fn skipped_row(&self) -> bool {
        self.status == SKIPPED
    }

    /// Whether its job was queued and its end not yet seen.
    pub(crate) fn pending(&self) -> bool {
        self.id.is_some() && self.status == JobStatus::Dispatched.as_str()
    }

    /// Ends the row `error: why`.
    pub(crate) fn fail(&mut self, why: String) {
        self.status = JobStatus::Error.to_string();
        self.text = why;
        self.failed = true;
    }
}

pub(crate) fn fill(row: &mut Row, job: Option<Job>) {
    match job {
        Some(job) => {
            row.status = job.status.to_string();
            row.time = job.run_time();
            row.failed = job.status != JobStatus::Finished;
            row.text = match job.status {
                JobStatus::Finished => job.output.unwrap_or_default(),
                _ => job.error.unwrap_or_default(),
            };
            row.log = job.log;
        }
        None => {
            row.status = NOT_RUN.into();
            row.failed = true;
            row.text = "it had not started when the run ended".into();
        }
    }
}

fn one_line(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= width {
        flat
    } else {
        let cut: String = flat.chars().take(width.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// A row as one JSON object (`time_ms`: how long its job ran, if it ran).
pub(crate) fn row_json(row: &Row) -> serde_json::Value {
    serde_json::json!({
        "file": row.file,
        "id": row.id,
        "status": row.status,
        "time_ms": row.time.map(|t| t.as_secs_f64() * 1000.0),
        "failed": row.failed,
        "text": row.text,
        "log": row.log,
    })
}

/// The table of `rows`; with `show_log`, each row's log lines under it, indented.
pub(crate) fn print_table(rows: &[Row], show_log: bool) {
    let file_width = rows
        .iter()
        .map(|r| r.file.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    println!(
        "{:<file_width$}  {:<10}  {:>9}  OUTPUT / ERROR",
        "FILE", "STATUS", "TIME"
    );
    for row in rows {
        let time = row
            .time
            .map_or_else(|| "-".to_string(), |t| format!("{:.1?}", t));
        println!(
            "{:<file_width$}  {:<10}  {:>9}  {}",
            one_line(&row.file, file_width),
            row.status,
            time,
            one_line(&row.text, 80)
        );
        if show_log {
            for line in &row.log {
                println!("    | {}", one_line(line, 200));
            }
        }
    }
}
