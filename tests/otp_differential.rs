//! Differential tests against the real BEAM: each scenario in `tests/otp/` runs once as an
//! Erlang escript (`tests/otp/<name>.escript`, helpers in `tests/otp/common.hrl`) and once on
//! baobab (`tests/otp/scenarios.rs`); the two normalised traces must be equal line by line.
//!
//! Needs `escript` (Erlang/OTP) on the PATH. Without it each test fails when `CI=true` and
//! prints a skip note otherwise.

#[path = "otp/scenarios.rs"]
mod scenarios;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// A run of baobab's side that takes longer than this is a hang (each of its waits gives up
/// after 5 s and says so in the trace; this catches anything else).
const HANG: Duration = Duration::from_secs(120);

fn otp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otp")
}

/// Whether `escript` can run; `false` after printing a skip note, a panic under `CI=true`.
fn escript_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("escript")
            .arg("/dev/null")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .is_ok()
    });
    if !available {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "escript (Erlang/OTP) is missing: the differential tests against the BEAM cannot run in CI"
        );
        eprintln!(
            "skipped: escript (Erlang/OTP) is not on the PATH, so there is no BEAM to compare with"
        );
    }
    available
}

/// The trace of `tests/otp/<name>.escript` on the BEAM.
fn beam_trace(name: &str) -> Vec<String> {
    let script = Path::new("tests/otp").join(format!("{name}.escript"));
    let output = Command::new("escript")
        .arg(&script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap_or_else(|e| panic!("running escript {}: {e}", script.display()));
    let stdout = String::from_utf8(output.stdout).expect("a utf-8 trace");
    assert!(
        output.status.success(),
        "escript {} failed ({}):\n{}{}",
        script.display(),
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    let trace: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert!(!trace.is_empty(), "{name}.escript printed nothing");
    trace
}

/// baobab's trace of scenario `name`, on a thread of its own so a hang fails the test.
fn baobab_trace(name: &'static str) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("scenario {name}"))
        .spawn(move || {
            let _ = tx.send(scenarios::run(name));
        })
        .unwrap();
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("{name}: baobab's run did not end within {HANG:?}"))
}

/// The two traces side by side, differing lines marked.
fn diff(beam: &[String], ours: &[String]) -> String {
    let width = beam.iter().map(String::len).max().unwrap_or(0).max(16);
    let mut out = format!("      {:width$}   baobab\n", "BEAM (Erlang/OTP)");
    for i in 0..beam.len().max(ours.len()) {
        let left = beam.get(i).map_or("<no line>", String::as_str);
        let right = ours.get(i).map_or("<no line>", String::as_str);
        let mark = if beam.get(i) == ours.get(i) {
            "  "
        } else {
            "!!"
        };
        out += &format!("{mark} {:>2}  {left:width$} | {right}\n", i + 1);
    }
    out
}

fn check(name: &'static str) {
    if !escript_available() {
        return;
    }
    let beam = beam_trace(name);
    let ours = baobab_trace(name);
    assert!(
        beam == ours,
        "scenario {name}: baobab's trace differs from the BEAM's (lines marked !!)\n{}",
        diff(&beam, &ours)
    );
}

/// One test per scenario, named after it.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        /// The tests above, `scenarios::SCENARIOS` and the escripts name the same scenarios.
        #[test]
        fn every_escript_has_a_scenario_and_a_test() {
            let tests: BTreeSet<&str> = [$(stringify!($name)),*].into_iter().collect();
            let listed: BTreeSet<&str> = scenarios::SCENARIOS.iter().copied().collect();
            let escripts: BTreeSet<String> = std::fs::read_dir(otp_dir())
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|x| x == "escript"))
                .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
                .collect();
            let escripts: BTreeSet<&str> = escripts.iter().map(String::as_str).collect();
            assert_eq!(escripts, listed, "escripts in tests/otp vs scenarios::SCENARIOS");
            assert_eq!(tests, listed, "tests here vs scenarios::SCENARIOS");
        }
    };
}

scenarios!(
    link_error,
    link_normal_ignored,
    trap_exit_reasons,
    kill_trapper,
    self_exit_kill,
    exit_self_kill_signal,
    link_dead_with_trap,
    link_dead_without_trap,
    monitor_one_down,
    monitor_dead,
    demonitor_flush,
    exit_normal_from_other,
    exit_error_from_other,
    first_exit_signal_wins,
    alive_after_exit_signal,
    link_monitor_after_fatal_signal,
    exit_self_normal,
    link_both_ways,
    chain,
    unlink_before_crash,
    ordering,
    shutdown_reasons,
    name_released,
    supervisor_matrix,
    supervisor_intensity_shutdown,
);
