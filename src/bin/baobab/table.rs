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
        }
        None => {
            row.status = "not run".into();
            row.failed = true;
            row.text = "interrupted before it started".into();
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

pub(crate) fn print_table(rows: &[Row]) {
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
    }
}
