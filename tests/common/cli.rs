//! Running the `baobab` binary as a user does, for the CLI tests.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn baobab() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baobab"))
}

pub fn run(args: &[&str]) -> Output {
    baobab().args(args).output().expect("the binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The table row of `file`.
pub fn row<'a>(text: &'a str, file: &str) -> &'a str {
    text.lines()
        .find(|line| line.contains(file))
        .unwrap_or_else(|| panic!("no row for {file} in:\n{text}"))
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        // Short, so the table shows whole paths.
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("bh-{name}-{}", &unique[..6]));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn write(&self, name: &str, script: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, script).unwrap();
        path
    }

    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary and kills it if it has not exited within `limit` (a hang is a failure,
/// not a stuck test run).
pub fn run_within(args: &[&str], limit: Duration) -> (Output, Duration) {
    let start = Instant::now();
    let child = baobab()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_within(child, limit);
    (output, start.elapsed())
}

/// Waits for the child (reading its output as it comes), killing it past `limit`.
pub fn wait_within(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return true;
        }
        false
    });
    let output = child.wait_with_output().unwrap();
    let _ = done.send(());
    let killed = watchdog.join().unwrap();
    assert!(
        !killed,
        "still running after {limit:?}:\n{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Runs the binary with `args`, sends it `signal` after `after`, and waits (up to `limit`)
/// for it to exit: its output, and how long it took after the signal.
pub fn interrupted(
    args: &[&str],
    after: Duration,
    name: &str,
    limit: Duration,
) -> (Output, Duration) {
    let child = baobab()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let start = Instant::now();
    signal(&child, name);
    let output = wait_within(child, limit);
    (output, start.elapsed())
}

/// A runner process, killed if the test ends (or fails) without stopping it.
pub struct RunnerProcess(pub Child);

impl Drop for RunnerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
