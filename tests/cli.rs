//! The `baobab` binary, run as a user runs it.
#![cfg(feature = "cli")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cli::{interrupted, row, run, stdout};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("baobab-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, script: &str) {
    std::fs::write(dir.join(name), script).unwrap();
}

#[test]
fn the_demo_jobs_run_and_the_sandbox_stops_the_bad_ones() {
    let start = Instant::now();
    let output = run(&["run", "examples/jobs", "--timeout", "2", "--workers", "2"]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "some demo jobs fail on purpose:\n{text}"
    );
    assert!(row(&text, "01_answer.rhai").contains("finished"));
    assert!(row(&text, "01_answer.rhai").ends_with("  42"));
    assert!(row(&text, "04_primes.rhai").contains("2262 primes below 20000"));
    assert!(row(&text, "06_thrown_error.rhai").contains("cannot withdraw 25 from 10"));
    assert!(row(&text, "07_forever.rhai").contains("timeout: still running after 2s"));
    assert!(row(&text, "08_string_bomb.rhai").contains("limit exceeded: max-string-size"));
    assert!(row(&text, "09_no_escape.rhai").contains("import is not allowed"));
    assert!(text.contains("9 jobs: 5 finished, 4 failed"), "{text}");
    assert!(start.elapsed() < Duration::from_secs(30));
}

#[test]
fn all_good_jobs_exit_zero_and_print_nothing_but_the_table() {
    let dir = temp_dir("good");
    write(&dir, "a.rhai", "1 + 1");
    write(&dir, "b.rhai", r#"print("not on stdout"); "b""#);
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    write(&dir.join("nested"), "c.rhai", "[1, 2]");
    write(&dir, "ignored.txt", "not a job");
    let output = run(&["run", dir.to_str().unwrap()]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(row(&text, "a.rhai").ends_with("  2"));
    assert!(row(&text, "c.rhai").ends_with("  [1,2]"));
    assert!(!text.contains("ignored.txt"));
    assert!(
        !text.contains("not on stdout"),
        "print goes to the job's log"
    );
    assert!(text.contains("3 jobs: 3 finished, 0 failed"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn invalid_jobs_and_limits_from_flags_are_reported_per_row() {
    let dir = temp_dir("invalid");
    write(&dir, "empty.rhai", "   \n");
    write(&dir, "big.rhai", &format!("\"{}\"", "x".repeat(200)));
    write(&dir, "deep.rhai", "fn f(n) { f(n + 1) } f(0)");
    write(&dir, "env.rhai", "GREETING");
    let output = run(&[
        "run",
        dir.to_str().unwrap(),
        "--max-script-size",
        "100",
        "--max-call-depth",
        "5",
        "--env",
        "GREETING=hello",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(row(&text, "empty.rhai").contains("field `script`: a job needs a script"));
    assert!(row(&text, "big.rhai").contains("over the limit of 100 bytes"));
    assert!(row(&text, "deep.rhai").contains("limit exceeded: max-call-depth (5)"));
    assert!(row(&text, "env.rhai").ends_with("  hello"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let output = run(&["run", "no/such/dir"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no such file or directory"));
}

#[test]
fn help_explains_every_flag() {
    let output = run(&["run", "--help"]);
    let text = stdout(&output);
    for flag in [
        "--workers",
        "--timeout",
        "--max-operations",
        "--max-call-depth",
        "--max-expr-depth",
        "--max-string-size",
        "--max-array-size",
        "--max-map-size",
        "--db-path",
        "--log-level",
        "--log-json",
        "--grace",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn sigterm_stops_taking_jobs_cancels_running_ones_after_the_grace_and_exits_130() {
    let dir = temp_dir("sigterm");
    write(&dir, "a_forever.rhai", "loop {}");
    write(&dir, "b_quick.rhai", "7");
    let (output, took) = interrupted(
        &[
            "run",
            dir.to_str().unwrap(),
            "--workers",
            "1",
            "--timeout",
            "60",
            "--max-operations",
            "0",
            "--grace",
            "1",
            "--log-json",
            "--log-level",
            "info",
        ],
        Duration::from_millis(500),
        "TERM",
        Duration::from_secs(10),
    );
    assert!(took < Duration::from_secs(10));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(row(&text, "a_forever.rhai").contains("cancelled"), "{text}");
    // Logs are JSON lines on stderr.
    let logs = String::from_utf8_lossy(&output.stderr);
    let json_lines = logs.lines().filter(|l| l.starts_with('{')).count();
    assert!(json_lines > 0, "{logs}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn show_log_prints_what_each_script_printed_and_json_gives_one_object_per_job() {
    let dir = temp_dir("log");
    write(
        &dir,
        "a.rhai",
        "print(\"hello\");\nprint(\"again\");\n40 + 2\n",
    );
    write(&dir, "b.rhai", "print(\"before\");\nthrow \"bad\"\n");
    let dir_arg = dir.to_str().unwrap();
    let output = run(&["run", dir_arg, "--show-log"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("\n    | hello\n    | again\n"), "{text}");
    assert!(text.contains("\n    | before\n"), "{text}");
    // Without the flag, no log lines.
    let plain = stdout(&run(&["run", dir_arg]));
    assert!(!plain.contains("    | "), "{plain}");

    let output = run(&["run", dir_arg, "--json"]);
    let text = stdout(&output);
    let jobs: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect();
    assert_eq!(jobs.len(), 2, "one line per job and nothing else: {text}");
    let a = jobs
        .iter()
        .find(|j| j["file"].as_str().unwrap().ends_with("a.rhai"))
        .unwrap();
    assert_eq!(a["status"], "finished");
    assert_eq!(a["text"], "42");
    assert_eq!(a["log"], serde_json::json!(["hello", "again"]));
    assert!(a["time_ms"].as_f64().unwrap() >= 0.0);
    let b = jobs
        .iter()
        .find(|j| j["file"].as_str().unwrap().ends_with("b.rhai"))
        .unwrap();
    assert_eq!(b["status"], "error");
    assert_eq!(b["failed"], true);
    assert_eq!(b["log"], serde_json::json!(["before"]));
    assert_eq!(output.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}
