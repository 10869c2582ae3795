//! Differential tests against the real BEAM: each scenario in `tests/otp/` runs once as an
//! Erlang escript and once on baobab, and the two normalised traces must be equal line by line.
//!
//! Needs `escript` (Erlang/OTP) on the PATH. Without it the test fails when `CI=true` and
//! says it skipped otherwise.

#[path = "otp/scenarios.rs"]
mod scenarios;

use std::path::Path;
use std::process::Command;

const SCENARIOS: &[&str] = &[
    "link_error",
    "link_normal_ignored",
    "trap_normal_and_error",
    "kill_trapper",
    "self_kill_reaches_links_as_kill",
    "link_dead_with_trap",
    "link_dead_without_trap",
    "monitor_dead",
    "demonitor_flush",
    "exit_normal_to_non_trapping",
    "exit_normal_to_trapping",
    "exit_self_normal",
    "chain",
    "unlink_before_crash",
    "ordering",
    "shutdown_term",
    "name_released",
];

fn escript_available() -> bool {
    Command::new("escript")
        .arg("-s")
        .arg("/dev/null")
        .output()
        .is_ok()
}

fn beam_trace(name: &str) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/otp")
        .join(format!("{name}.escript"));
    let output = Command::new("escript")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{name}.escript failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 trace")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_scenario_matches_the_beam_trace_for_trace() {
    if !escript_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "escript (Erlang/OTP) is missing: the differential tests cannot run in CI"
        );
        eprintln!("skipped: escript (Erlang/OTP) is not on the PATH");
        return;
    }
    let scenario_files = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otp"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "escript"))
        })
        .count();
    assert_eq!(
        scenario_files,
        SCENARIOS.len(),
        "every escript has a scenario here"
    );
    let mut mismatches = vec![];
    for name in SCENARIOS {
        let beam = beam_trace(name);
        let ours = scenarios::run(name);
        assert!(!beam.is_empty(), "{name}: the escript printed nothing");
        if beam != ours {
            mismatches.push(format!("{name}:\n  BEAM:   {beam:?}\n  baobab: {ours:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "traces differ:\n{}",
        mismatches.join("\n")
    );
}
