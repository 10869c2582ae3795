//! The sandbox's unit tests: outputs, context, limits, errors, the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::jobs::Job;

fn sandbox(limits: Limits) -> Sandbox {
    Sandbox::new(SandboxConfig {
        limits,
        db_path: "/tmp/db".into(),
        ..SandboxConfig::default()
    })
}

fn run(sandbox: &Sandbox, script: &str) -> Result<ScriptOutput, ScriptError> {
    let job = Job::builder(script)
        .caller_id("alice")
        .context_id("ctx-1")
        .env("GREETING", "hello")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    sandbox.run(&job, None)
}

fn limit_of(result: Result<ScriptOutput, ScriptError>) -> Limit {
    match result {
        Err(ScriptError::Limit { limit, .. }) => limit,
        other => panic!("expected a limit, got {other:?}"),
    }
}

#[test]
fn outputs_are_text_and_json() {
    let s = sandbox(Limits::default());
    assert_eq!(run(&s, "40 + 2").unwrap().output, "42");
    assert_eq!(run(&s, r#""text""#).unwrap().output, "text");
    assert_eq!(run(&s, "let x = 1;").unwrap().output, "");
    assert_eq!(
        run(&s, "[1, 2.5, true, ()]").unwrap().output,
        "[1,2.5,true,null]"
    );
    assert_eq!(
        run(&s, "#{a: [1], b: \"x\"}").unwrap().output,
        r#"{"a":[1],"b":"x"}"#
    );
}

#[test]
fn the_script_sees_its_context_as_constants() {
    let s = sandbox(Limits::default());
    let out = run(
        &s,
        "`${JOB_ID.len()} ${CALLER_ID} ${CONTEXT_ID} ${DB_PATH} ${GREETING}`",
    );
    assert_eq!(out.unwrap().output, "36 alice ctx-1 /tmp/db hello");
    assert!(matches!(
        run(&s, "CALLER_ID = 1"),
        Err(ScriptError::Compile(_) | ScriptError::Runtime(_))
    ));
}

#[test]
fn print_and_debug_go_to_the_job_log() {
    let s = sandbox(Limits::default());
    let out = run(&s, r#"print("one"); debug("two"); 3"#).unwrap();
    assert_eq!(out.log.len(), 2);
    assert_eq!(out.log[0], "one");
    assert!(out.log[1].contains("two"));
}

#[test]
fn each_limit_is_enforced_and_named() {
    let small = Limits {
        max_output_size: 10_000,
        max_operations: 10_000,
        max_call_depth: 8,
        max_expr_depth: 24,
        max_string_size: 100,
        max_array_size: 10,
        max_map_size: 10,
        ..Limits::default()
    };
    let s = sandbox(small);
    assert_eq!(
        limit_of(run(&s, "let x = 0; while true { x += 1; }")),
        Limit::Operations
    );
    assert_eq!(
        limit_of(run(&s, "fn f(n) { f(n + 1) } f(0)")),
        Limit::CallDepth
    );
    let deep = format!("{}1{}", "(".repeat(60), ")".repeat(60));
    assert_eq!(limit_of(run(&s, &deep)), Limit::ExprDepth);
    assert_eq!(
        limit_of(run(&s, r#"let s = "x"; for i in 0..10 { s += s; } s"#)),
        Limit::StringSize
    );
    assert_eq!(
        limit_of(run(&s, "let a = []; for i in 0..20 { a.push(i); } a")),
        Limit::ArraySize
    );
    assert_eq!(
        limit_of(run(
            &s,
            "let m = #{}; for i in 0..20 { let one = #{}; one[`k${i}`] = i; m += one; } m"
        )),
        Limit::MapSize
    );
    // An index assignment that adds a key is not checked by Rhai as it happens (the
    // operations limit bounds it); the output is checked.
    assert_eq!(
        limit_of(run(&s, "let m = #{}; for i in 0..20 { m[`k${i}`] = i; } m")),
        Limit::MapSize
    );
    let message = run(&s, "let x = 0; while true { x += 1; }")
        .unwrap_err()
        .to_string();
    assert_eq!(message, "limit exceeded: max-operations (10000)");
}

#[test]
fn the_wall_clock_timeout_ends_an_endless_loop() {
    let s = sandbox(Limits::default());
    let job = Job::builder("loop {}")
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        s.run(&job, None),
        Err(ScriptError::Timeout(Duration::from_secs(1)))
    );
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[test]
fn a_cancel_flag_stops_a_running_script() {
    let s = Arc::new(sandbox(Limits::default()));
    let flag = Arc::new(AtomicBool::new(false));
    let job = Job::builder("loop {}")
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let runner = {
        let (s, flag) = (Arc::clone(&s), Arc::clone(&flag));
        std::thread::spawn(move || s.run(&job, Some(flag)))
    };
    std::thread::sleep(Duration::from_millis(20));
    flag.store(true, Ordering::Relaxed);
    assert_eq!(runner.join().unwrap(), Err(ScriptError::Cancelled));
}

#[test]
fn imports_fail_clearly_without_a_module_directory() {
    let s = sandbox(Limits::default());
    let error = run(&s, r#"import "secrets" as s; 1"#).unwrap_err();
    assert_eq!(error, ScriptError::ImportDenied("secrets".into()));
    assert!(error.to_string().contains("not allowed"));
}

#[test]
fn imports_read_only_from_the_module_directory() {
    let dir = std::env::temp_dir().join(format!("baobab-modules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("answer.rhai"), "fn get() { 42 }").unwrap();
    let s = Sandbox::new(SandboxConfig {
        module_dir: Some(dir.clone()),
        ..SandboxConfig::default()
    });
    assert_eq!(
        run(&s, r#"import "answer" as a; a::get()"#).unwrap().output,
        "42"
    );
    assert!(run(&s, r#"import "missing" as m; 1"#).is_err());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn imports_cannot_leave_the_module_directory_block_or_read_without_bound() {
    let root = std::env::temp_dir().join(format!("baobab-modules-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("modules");
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::write(root.join("secret.rhai"), "fn get() { \"secret\" }").unwrap();
    std::fs::write(dir.join("lib/math.rhai"), "fn twice(x) { x * 2 }").unwrap();
    std::fs::write(
        dir.join("big.rhai"),
        format!("let x = \"{}\";", "y".repeat(2000)),
    )
    .unwrap();
    std::fs::write(dir.join("captures.rhai"), "let y = 1; let f = |x| x + y;").unwrap();
    std::os::unix::fs::symlink(root.join("secret.rhai"), dir.join("link.rhai")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.rhai")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(dir.join("pipe.rhai"))
            .status()
            .unwrap()
            .success()
    );
    let s = Sandbox::new(SandboxConfig {
        module_dir: Some(dir.clone()),
        max_module_bytes: 1000,
        ..SandboxConfig::default()
    });
    assert_eq!(
        run(&s, r#"import "lib/math" as m; m::twice(21)"#)
            .unwrap()
            .output,
        "42"
    );
    let root_path = root.join("secret");
    let absolute = format!(r#"import "{}" as m; m::get()"#, root_path.display());
    for (script, why) in [
        (r#"import "../secret" as m; m::get()"#, "plain names"),
        (absolute.as_str(), "plain names"),
        (r#"import "lib/../../secret" as m; m::get()"#, "plain names"),
        (
            r#"import "link" as m; m::get()"#,
            "outside the module directory",
        ),
        (r#"import "zero" as m; 1"#, "outside the module directory"),
        (r#"import "pipe" as m; 1"#, "not a regular file"),
        (r#"import "big" as m; 1"#, "over the limit of 1000 bytes"),
        (r#"import "captures" as m; 1"#, "may not capture"),
    ] {
        let start = Instant::now();
        let error = run(&s, script).unwrap_err().to_string();
        assert!(error.contains(why), "{script}: {error}");
        assert!(start.elapsed() < Duration::from_secs(2), "{script}");
    }
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn compile_errors_and_runtime_errors_are_told_apart() {
    let s = sandbox(Limits::default());
    assert!(matches!(run(&s, "let = ;"), Err(ScriptError::Compile(_))));
    assert!(matches!(run(&s, r#"throw "no""#), Err(ScriptError::Runtime(m)) if m.contains("no")));
    assert!(matches!(
        run(&s, "no_such_fn()"),
        Err(ScriptError::Runtime(_))
    ));
}

#[test]
fn compiled_scripts_are_cached_within_a_bound() {
    // Without counted allocations an entry costs its text times a fixed ratio, plus its text.
    let entry = 5 * (cache::AST_BYTES_PER_SOURCE_BYTE + 1);
    let s = Sandbox::new(SandboxConfig {
        cache_bytes: 2 * entry,
        ..SandboxConfig::default()
    });
    for i in 0..5 {
        assert_eq!(
            run(&s, &format!("{i} + 1")).unwrap().output,
            (i + 1).to_string()
        );
    }
    assert_eq!(s.cached(), (2, 2 * entry));
}
