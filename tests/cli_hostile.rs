//! The `baobab` binary against hostile jobs, files and flags: nothing a script, a file or a
//! flag holds can hang, wedge or exhaust the runner.
#![cfg(feature = "cli")]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::cli::{TempDir, baobab, interrupted, row, run, run_within, stderr, stdout};

#[test]
fn sleep_ends_at_the_timeout_and_never_panics() {
    let dir = TempDir::new("sleep");
    dir.write("long.rhai", "sleep(100); 1");
    dir.write("huge.rhai", "sleep(1.0e300); 1");
    dir.write("infinite.rhai", "sleep(1.0 / 0.0); 1");
    dir.write("nan.rhai", "sleep(0.0 / 0.0); 2");
    dir.write("negative.rhai", "sleep(-5); sleep(-1.5); 3");
    dir.write("max.rhai", "sleep(9223372036854775807); 4");
    dir.write("method.rhai", "let f = Fn(\"sleep\"); f.call(100); 5");
    dir.write("short.rhai", "sleep(0.05); 6");
    let (output, took) = run_within(
        &["run", dir.path(), "--timeout", "1", "--workers", "4"],
        Duration::from_secs(20),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for file in ["long", "huge", "infinite", "max", "method"] {
        assert!(
            row(&text, &format!("{file}.rhai")).contains("timeout: still running after 1s"),
            "{text}"
        );
    }
    assert!(row(&text, "nan.rhai").ends_with("  2"), "{text}");
    assert!(row(&text, "negative.rhai").ends_with("  3"), "{text}");
    assert!(row(&text, "short.rhai").ends_with("  6"), "{text}");
    assert!(!text.contains("panic"), "{text}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn a_burst_of_hostile_sleeps_leaves_the_innocent_jobs_alone() {
    let dir = TempDir::new("burst");
    for i in 0..24 {
        dir.write(&format!("a{i:02}.rhai"), "sleep(1.0e300)");
    }
    for i in 0..10 {
        dir.write(&format!("b{i:02}.rhai"), &format!("{i} * 2"));
    }
    let (output, took) = run_within(
        &["run", dir.path(), "--timeout", "1", "--workers", "8"],
        Duration::from_secs(30),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    for i in 0..10 {
        assert!(
            row(&text, &format!("b{i:02}.rhai")).ends_with(&format!("  {}", i * 2)),
            "{text}"
        );
    }
    assert!(text.contains("34 jobs: 10 finished, 24 failed"), "{text}");
    assert!(!text.contains("worker"), "no worker died: {text}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

#[test]
fn sigterm_ends_a_sleeping_job_within_the_grace() {
    let dir = TempDir::new("sleep-term");
    dir.write("sleepy.rhai", "sleep(1000)");
    let (output, took) = interrupted(
        &["run", dir.path(), "--timeout", "600", "--grace", "1"],
        Duration::from_millis(500),
        "TERM",
        Duration::from_secs(10),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(130), "{text}");
    assert!(row(&text, "sleepy.rhai").contains("cancelled"), "{text}");
    // The promise is the grace plus a second; a busy CI machine gets one more.
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}: grace 1 s + 1 s"
    );
}

#[test]
fn sigint_with_a_thousand_jobs_queued_exits_within_the_grace() {
    let dir = TempDir::new("queued");
    dir.write("000_forever.rhai", "loop {}");
    for i in 1..=1000 {
        dir.write(&format!("{i:04}.rhai"), "loop {}");
    }
    let (output, took) = interrupted(
        &[
            "run",
            dir.path(),
            "--workers",
            "1",
            "--timeout",
            "600",
            "--max-operations",
            "0",
            "--grace",
            "1",
            "--no-progress",
        ],
        Duration::from_millis(1500),
        "INT",
        Duration::from_secs(30),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    // The promise is the grace plus a second; a busy CI machine gets one more.
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}: grace 1 s + 1 s"
    );
    assert!(text.contains("1001 jobs:"), "{text}");
    assert!(row(&text, "0999.rhai").contains("not run"), "{text}");
}

#[test]
fn flags_outside_their_ranges_are_usage_errors() {
    let dir = TempDir::new("flags");
    dir.write("a.rhai", "1");
    let cases: &[&[&str]] = &[
        &["--workers", "4294967296"],
        &["--workers", "0"],
        &["--workers", "1025"],
        &["--concurrency", "0"],
        &["--concurrency", "65"],
        &["--workers", "64", "--concurrency", "64"],
        &["--timeout", "0"],
        &["--timeout", "86401"],
        &["--max-call-depth", "1000"],
        &["--max-call-depth", "0"],
        &["--max-expr-depth", "0"],
        &["--max-expr-depth", "100000"],
        &["--max-array-size", "0"],
        &["--max-map-size", "99999999"],
        &["--max-output-size", "0"],
        &["--max-output-size", "1G"],
        &["--max-script-size", "0"],
        &["--max-memory", "12 parsecs"],
        &["--max-log-size", "-1"],
        &["--grace", "3601"],
        &["--log-level", "garbage"],
        &["--log-level", "baobab=loud"],
        &["--modules", "/no/such/dir"],
        &["--env", "1BAD=x"],
        &["--env", "JOB_ID=x"],
        &["--heartbeat-ttl", "0"],
        &["--heartbeat-ttl", "nan"],
    ];
    for case in cases {
        let mut args = vec!["run", dir.path()];
        args.extend_from_slice(case);
        let (output, _) = run_within(&args, Duration::from_secs(20));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{case:?} should be refused:\n{}{}",
            stdout(&output),
            stderr(&output)
        );
        assert!(
            stdout(&output).is_empty(),
            "{case:?} ran jobs:\n{}",
            stdout(&output)
        );
    }
    let heartbeat = run(&[
        "run",
        "--redis",
        "redis://127.0.0.1:1",
        "--heartbeat-ttl",
        "0",
    ]);
    assert_eq!(heartbeat.status.code(), Some(2));
    let stop = run(&[
        "stop",
        "x",
        "--redis",
        "redis://127.0.0.1:1",
        "--wait",
        "-1",
    ]);
    assert_eq!(stop.status.code(), Some(2));
    let submit = run(&[
        "submit",
        dir.path(),
        "--redis",
        "redis://127.0.0.1:1",
        "--timeout",
        "0",
    ]);
    assert_eq!(submit.status.code(), Some(2));
    // The edges of each range are accepted.
    let (output, _) = run_within(
        &[
            "run",
            dir.path(),
            "--workers",
            "1",
            "--max-call-depth",
            "256",
            "--max-expr-depth",
            "256",
            "--max-memory",
            "64MiB",
            "--max-log-size",
            "0",
            "--cache-size",
            "0",
            "--log-level",
            "info,baobab::jobs=debug",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

/// Nesting a value as deep as the limits allow, then every operation that walks it: the
/// value is built by each way a script can nest one, and dropped at the end.
const DEEP_OPERATIONS: &str = r#"
    fn deep(n) { let a = 1; for i in 0..n { a = if i % 2 == 0 { [a] } else { #{ k: a } }; } a }
    let a = deep(DEPTH);
    let b = a;
    let same = a == b && !(a != b) && [a].contains(b) && [a].index_of(b) == 0;
    let text = a.to_string() + a.to_debug() + `${a}`;
    print(a); debug(a);
    switch a { 1 => (), _ => () }
    if !same { throw "not equal" }
    TWICE
    [a, text.len()]
"#;

/// Operations that hold the value twice (run at half the depth).
const TWICE: &str = r#"
    let c = [a, b];
    c.sort(|x, y| 0);
    c.dedup();
    let m = #{ x: a };
    let n = m + #{ y: b };
    if !(c[0] == n.y) { throw "not equal" }
"#;

#[test]
fn no_depth_limit_overflows_the_stack() {
    let dir = TempDir::new("depth");
    dir.write("recurse.rhai", "fn f(n) { f(n + 1) } f(0)");
    dir.write(
        "recurse_expr.rhai",
        &format!(
            "fn f(n) {{ {}f(n + 1){} }} f(0)",
            "(1 + ".repeat(120),
            ")".repeat(120)
        ),
    );
    dir.write(
        "nested_arrays.rhai",
        "let a = []; for i in 0..10000000 { a = [a]; } 1",
    );
    dir.write(
        "nested_maps.rhai",
        "let m = #{}; for i in 0..10000000 { m = #{ m: m }; } 1",
    );
    dir.write(
        "nested_by_index.rhai",
        "let a = [0]; for i in 0..10000000 { let b = [0]; b[0] = a; a = b; } 1",
    );
    dir.write(
        "nested_by_push.rhai",
        "let a = [0]; for i in 0..10000000 { let b = []; b.push(a); a = b; } 1",
    );
    dir.write(
        "nested_by_property.rhai",
        "let a = #{}; for i in 0..10000000 { let b = #{}; b.x = a; a = b; } 1",
    );
    dir.write(
        "curry.rhai",
        "fn id(x) { x } let f = Fn(\"id\"); for i in 0..10000000 { f = f.curry(f); } 1",
    );
    dir.write(
        "closure.rhai",
        "let f = || 1; for i in 0..10000000 { let g = f; f = || g; } 1",
    );
    dir.write("ok.rhai", "42");
    let (output, _) = run_within(
        &[
            "run",
            dir.path(),
            "--workers",
            "2",
            "--timeout",
            "30",
            "--max-call-depth",
            "256",
            "--max-expr-depth",
            "256",
            "--max-array-size",
            "2000",
            "--max-map-size",
            "2000",
        ],
        Duration::from_secs(240),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}\n{}", stderr(&output));
    assert!(row(&text, "ok.rhai").ends_with("  42"), "{text}");
    assert!(
        row(&text, "recurse.rhai").contains("limit exceeded: max-call-depth (256)"),
        "{text}"
    );
    assert!(
        row(&text, "recurse_expr.rhai").contains("limit exceeded: max-call-depth"),
        "{text}"
    );
    for file in ["nested_arrays", "nested_by_index", "nested_by_push"] {
        let row = row(&text, &format!("{file}.rhai"));
        assert!(
            row.contains("limit exceeded: max-array-size (2000)"),
            "{row}"
        );
    }
    for file in ["nested_maps", "nested_by_property"] {
        let row = row(&text, &format!("{file}.rhai"));
        assert!(row.contains("limit exceeded: max-map-size (2000)"), "{row}");
    }
    assert!(row(&text, "curry.rhai").contains("compile error"), "{text}");
    assert!(
        row(&text, "closure.rhai").contains("may not capture"),
        "{text}"
    );
}

#[test]
fn values_nested_as_deep_as_the_limits_allow_are_walked_without_recursion() {
    let dir = TempDir::new("deep-values");
    // Just under the limits (each array or map counts one entry per level).
    dir.write(
        "deepest.rhai",
        &DEEP_OPERATIONS
            .replace("DEPTH", "3990")
            .replace("TWICE", ""),
    );
    dir.write(
        "deep_twice.rhai",
        &DEEP_OPERATIONS
            .replace("DEPTH", "1990")
            .replace("TWICE", TWICE),
    );
    // Small call and expression depths: the stack then holds the nesting and little more,
    // so a walk that recursed per level (Rhai's own printing and comparing do, through the
    // engine, ~10 KB a level in a debug build) would run out of it.
    let (output, _) = run_within(
        &[
            "run",
            dir.path(),
            "--timeout",
            "60",
            "--max-call-depth",
            "8",
            "--max-expr-depth",
            "32",
            "--max-array-size",
            "2000",
            "--max-map-size",
            "2000",
        ],
        Duration::from_secs(240),
    );
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", stderr(&output));
    for file in ["deepest", "deep_twice"] {
        let deep = row(&text, &format!("{file}.rhai"));
        assert!(deep.contains("finished"), "{deep}");
        assert!(deep.contains("[{\"k\":[{\"k\":"), "{deep}");
    }
}

#[test]
fn the_walk_ends_on_loops_skips_what_is_not_a_file_and_never_blocks() {
    let dir = TempDir::new("walk");
    std::fs::create_dir_all(dir.0.join("a/b")).unwrap();
    dir.write("a/b/job.rhai", "40 + 2");
    std::os::unix::fs::symlink(&dir.0, dir.0.join("a/b/loop1")).unwrap();
    std::os::unix::fs::symlink(dir.0.join("a"), dir.0.join("a/b/loop2")).unwrap();
    std::os::unix::fs::symlink(dir.0.join("a/b"), dir.0.join("a/loop3")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.0.join("zero.rhai")).unwrap();
    std::os::unix::fs::symlink("/dev/null", dir.0.join("null.rhai")).unwrap();
    let fifo = dir.0.join("pipe.rhai");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let socket = std::os::unix::net::UnixListener::bind(dir.0.join("sock.rhai")).unwrap();
    let (output, took) = run_within(&["run", dir.path()], Duration::from_secs(20));
    drop(socket);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert_eq!(text.matches("job.rhai").count(), 1, "{text}");
    assert!(row(&text, "job.rhai").ends_with("  42"), "{text}");
    assert!(row(&text, "zero.rhai").contains("skipped"), "{text}");
    assert!(
        row(&text, "zero.rhai").contains("a character device"),
        "{text}"
    );
    assert!(row(&text, "null.rhai").contains("skipped"), "{text}");
    assert!(row(&text, "pipe.rhai").contains("a FIFO"), "{text}");
    assert!(row(&text, "sock.rhai").contains("a socket"), "{text}");
    assert!(text.contains("4 skipped"), "{text}");
    assert!(took < Duration::from_secs(10));
    // Named directly, a FIFO is skipped too (and never opened: no writer ever comes).
    let (output, _) = run_within(&["run", fifo.to_str().unwrap()], Duration::from_secs(20));
    assert!(row(&stdout(&output), "pipe.rhai").contains("skipped"));
}

#[test]
fn a_file_over_the_script_limit_is_not_read_whole() {
    let dir = TempDir::new("big-file");
    // A sparse 64 GiB file: reading it whole would take minutes and all memory.
    let file = std::fs::File::create(dir.0.join("huge.rhai")).unwrap();
    file.set_len(64 << 30).unwrap();
    dir.write("ok.rhai", "1");
    dir.write("binary.rhai", "\u{0}");
    std::fs::write(dir.0.join("latin1.rhai"), [b'"', 0xe9, b'"']).unwrap();
    let (output, took) = run_within(&["run", dir.path()], Duration::from_secs(20));
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        row(&text, "huge.rhai").contains("over the limit of 1048576 bytes"),
        "{text}"
    );
    assert!(row(&text, "latin1.rhai").contains("not UTF-8"), "{text}");
    assert!(row(&text, "ok.rhai").ends_with("  1"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Runs the binary to its end: its output and its peak resident memory in bytes (the
/// kernel's own figure for the finished process, from `wait4`, which reaps it).
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (Output, u64) {
    let mut child = baobab()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut bytes).unwrap();
        bytes
    });
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is valid; `wait4` fills it and the status for our own
    // child, which nothing else waits for (the `Child` is not waited on after this).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(reaped, child.id() as libc::pid_t);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let output = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert_eq!(output.status.code(), code);
    (output, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn hostile_scripts_stay_within_the_stated_memory_per_worker() {
    let dir = TempDir::new("memory");
    let scripts = [
        // The log: millions of prints.
        (
            "prints",
            r#"for i in 0..500000 { print("a line of the job's log"); } 1"#,
        ),
        // The output: a map holding many references to one large string.
        (
            "shared_output",
            r#"let s = "x"; while s.len() < 8000000 { s += s; } let m = #{}; for i in 0..100 { m[`k${i}`] = s; } m"#,
        ),
        // to_string and interpolation of the same.
        (
            "shared_text",
            r#"let s = "x"; while s.len() < 8000000 { s += s; } let m = #{}; for i in 0..100 { m[`k${i}`] = s; } `${m}`.len()"#,
        ),
        // A map grown by index assignment, past every size limit.
        (
            "index_growth",
            r#"let m = #{}; let i = 0; loop { let v = "y"; v.pad(1000000, "z"); m[`k${i}`] = v + i; i += 1; }"#,
        ),
        // Many arrays each under the limits.
        (
            "many_values",
            r#"let all = #{}; let i = 0; loop { let a = []; a.pad(60000, 123456); all[`k${i}`] = a; i += 1; }"#,
        ),
        // A map of many small entries, copied at once (twice what the job holds).
        (
            "copies",
            r#"let pad = "k"; pad.pad(200, "k"); let m = #{}; let i = 0; loop { m[`${i}${pad}`] = i; i += 1; if i % 16384 == 0 { let c = m; } }"#,
        ),
        // Deep recursion, touching the stack.
        (
            "recursion",
            &*Box::leak(
                format!(
                    "fn f(n) {{ if n == 0 {{ 0 }} else {{ {}f(n - 1){} }} }} f(60)",
                    "(1 + ".repeat(20),
                    ")".repeat(20)
                )
                .into_boxed_str(),
            ),
        ),
        // An output over its own limit (set to 1 MiB below).
        (
            "big_output",
            r#"let s = "x"; while s.len() < 2000000 { s += s; } s"#,
        ),
        ("ok", "42"),
    ];
    for (name, script) in scripts {
        dir.write(&format!("{name}.rhai"), script);
    }
    // Baseline: the same binary on one trivial job.
    let base_dir = TempDir::new("memory-base");
    base_dir.write("ok.rhai", "42");
    let (_, baseline) = run_measured(&["run", base_dir.path(), "--workers", "2"]);

    let max_memory: u64 = 64 << 20;
    let (output, peak) = run_measured(&[
        "run",
        dir.path(),
        "--workers",
        "2",
        "--timeout",
        "30",
        "--max-memory",
        "64MiB",
        "--max-output-size",
        "1MiB",
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}{}", stderr(&output));
    assert!(row(&text, "ok.rhai").ends_with("  42"), "{text}");
    assert!(row(&text, "prints.rhai").ends_with("  1"), "{text}");
    // Over the output limit, or (Rhai counts each reference to a string) the string limit.
    let shared = row(&text, "shared_output.rhai");
    assert!(
        shared.contains("limit exceeded: max-output-size")
            || shared.contains("limit exceeded: max-string-size"),
        "{text}"
    );
    for (file, ending) in [
        ("big_output", "limit exceeded: max-output-size (1048576)"),
        ("shared_text", "limit exceeded: max-string-size (10485760)"),
        ("index_growth", "limit exceeded: max-memory (67108864)"),
        ("many_values", "limit exceeded: max-memory (67108864)"),
        ("copies", "limit exceeded: max-memory (67108864)"),
    ] {
        assert!(
            row(&text, &format!("{file}.rhai")).ends_with(ending),
            "{file}: {text}"
        );
    }
    assert!(row(&text, "recursion.rhai").ends_with("  1200"), "{text}");
    // The bound docs/jobs.md states, per running job: 3 × max-memory, 4 × max-string-size,
    // the output limit, the stack the script touches (these recurse little: 8 MiB is ample)
    // and the script; and per worker, its cache.
    let per_job = 3 * max_memory + 4 * (10 << 20) + (1 << 20) + (8 << 20) + (1 << 20);
    let bound = baseline + 2 * (per_job + (32 << 20));
    eprintln!(
        "peak {} MiB, bound {} MiB, baseline {} MiB",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    assert!(
        peak <= bound,
        "peak {} MiB over the bound {} MiB (baseline {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
}
