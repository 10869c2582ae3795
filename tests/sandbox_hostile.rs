//! The sandbox against hostile scripts, in one process with allocations counted (as the
//! `baobab` binary runs): every function of Rhai's standard library called with hostile
//! arguments, and each class of escape the sandbox closes (blocking, panics, unbounded
//! allocation in one call, stack overflow, reference cycles, `eval`).
#![cfg(feature = "rhai")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use baobab::jobs::Job;
use baobab::script::{CountingAllocator, Limit, Limits, Sandbox, SandboxConfig, ScriptError};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn limits() -> Limits {
    Limits {
        max_memory: 128 << 20,
        ..Limits::default()
    }
}

fn sandbox(limits: Limits) -> Arc<Sandbox> {
    Arc::new(Sandbox::new(SandboxConfig {
        limits,
        ..SandboxConfig::default()
    }))
}

/// Runs `script` on a thread with the stack the sandbox's limits need; the result and how
/// long it took.
fn run(
    sandbox: &Arc<Sandbox>,
    script: &str,
    timeout: Duration,
) -> (Result<String, ScriptError>, Duration) {
    let job = Job::builder(script).timeout(timeout).build().unwrap();
    let sandbox = Arc::clone(sandbox);
    std::thread::Builder::new()
        .stack_size(Sandbox::stack_size(sandbox.limits()))
        .spawn(move || {
            let start = Instant::now();
            let result = sandbox.run(&job, None).map(|done| done.output);
            (result, start.elapsed())
        })
        .unwrap()
        .join()
        .unwrap()
}

/// Asserts `script`, given a 1 s timeout, ends with it, within 4 s (the check itself is
/// within a millisecond; the rest is room for a busy machine).
fn ends_at_its_timeout(sandbox: &Arc<Sandbox>, script: &str) {
    let (result, took) = run(sandbox, script, Duration::from_secs(1));
    assert_eq!(
        result,
        Err(ScriptError::Timeout(Duration::from_secs(1))),
        "{script}"
    );
    assert!(took < Duration::from_secs(4), "{script}: {took:?}");
}

fn limit_of(result: &Result<String, ScriptError>) -> Option<Limit> {
    match result {
        Err(ScriptError::Limit { limit, .. }) => Some(*limit),
        _ => None,
    }
}

/// Values a hostile caller passes, defined once before each call.
const PRELUDE: &str = r#"
fn spin(a, b) { loop {} }
fn deep_call(n) { deep_call(n + 1) }
fn yes(a, b) { true }
let BIG = "x"; BIG.pad(262144, "y");
let WIDE = "é€😀"; WIDE.pad(20000, "\u0000\n\t");
let ARR = []; ARR.pad(2000, 7);
let STRS = []; STRS.pad(20, BIG);
let DEEP = 1; for i in 0..200 { DEEP = [DEEP]; }
let MAP = #{}; for i in 0..300 { MAP[`k${i}`] = i; }
let SHARED = #{}; for i in 0..30 { SHARED[`k${i}`] = BIG; }
let BLOB = blob(10000, 255);
let F = Fn("spin");
let LONGNAME = Fn(BIG.sub_string(0, 100000));
"#;

/// Argument expressions, in terms of the prelude.
const ARGS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "64",
    "65",
    "1000001",
    "4611686018427387904",
    "9223372036854775807",
    "(-9223372036854775807 - 1)",
    "0.0",
    "-1.0",
    "0.5",
    "1e300",
    "-1e300",
    "(1.0 / 0.0)",
    "(0.0 / 0.0)",
    "1e19",
    "\"\"",
    "\"abc\"",
    "\"é€😀\"",
    "BIG",
    "WIDE",
    "'a'",
    "'\\0'",
    "()",
    "true",
    "ARR",
    "STRS",
    "DEEP",
    "MAP",
    "SHARED",
    "BLOB",
    "F",
    "LONGNAME",
    "Fn(\"yes\")",
    "Fn(\"deep_call\")",
    "0..10",
    "(-5)..=9223372036854775807",
    "[]",
    "#{}",
    "timestamp()",
    "\"{\\\"a\\\": sleep(5)}\"",
    "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]\"",
];

const OPERATORS: &[&str] = &[
    "!", "!=", "%", "&", "*", "**", "+", "+=", "-", "-=", "/", "<", "<<", "<=", "==", ">", ">=",
    ">>", "^", "|",
];

/// The call of `name` with `args`, as a script line.
fn call(name: &str, args: &[&str]) -> String {
    if OPERATORS.contains(&name) {
        return match (name, args) {
            ("+=" | "-=", [a, b]) => format!("let x = {a}; x {name} {b}; x"),
            (_, [a]) => format!("{name} {a}"),
            (_, [a, b]) => format!("{a} {name} {b}"),
            _ => "()".into(),
        };
    }
    format!("{name}({})", args.join(", "))
}

/// A small deterministic generator (a test that replays the same calls each run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

#[test]
fn every_standard_function_called_with_hostile_arguments_ends_in_time_without_a_panic() {
    let functions: Vec<(String, usize)> = include_str!("data/rhai_functions.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, arity) = l.split_once(' ').unwrap();
            (name.to_string(), arity.parse().unwrap())
        })
        .collect();
    assert!(functions.len() > 200, "{}", functions.len());
    let mut calls = Vec::new();
    let mut random = Lcg(0x5eed);
    for (name, arity) in &functions {
        let per_function = if *arity == 0 { 1 } else { 10 };
        for _ in 0..per_function {
            let args: Vec<&str> = (0..*arity).map(|_| ARGS[random.next(ARGS.len())]).collect();
            calls.push(call(name, &args));
            // The method form too: the first argument as the receiver.
            if let Some((first, rest)) = args.split_first()
                && !OPERATORS.contains(&name.as_str())
            {
                calls.push(format!("let o = {first}; o.{name}({})", rest.join(", ")));
            }
        }
    }
    // The forms that are not plain calls.
    for arg in ARGS {
        calls.push(format!("`${{{arg}}}`"));
        calls.push(format!("print({arg}); debug({arg}); 1"));
        calls.push(format!("switch {arg} {{ 1 => 1, _ => 2 }}"));
        calls.push(format!("for x in {arg} {{ }} 1"));
        calls.push(format!("let o = {arg}; o[0]"));
        calls.push(format!("let o = {arg}; o[0] = {arg}; o"));
        calls.push(format!("{arg} in {arg}"));
        calls.push(arg.to_string());
    }
    let sandbox = sandbox(limits());
    let timeout = Duration::from_millis(200);
    let calls = Arc::new(calls);
    // Two threads, each with the stack the limits need, run half the calls each and report
    // each call as it starts and ends: a call that never returns fails the test (a scoped
    // thread could not be left behind, so these are not scoped).
    let (events, reports) = std::sync::mpsc::channel::<(usize, Option<String>)>();
    for t in 0..2 {
        let (calls, sandbox, events) = (Arc::clone(&calls), Arc::clone(&sandbox), events.clone());
        std::thread::Builder::new()
            .stack_size(Sandbox::stack_size(sandbox.limits()))
            .spawn(move || {
                for (i, line) in calls.iter().enumerate().skip(t).step_by(2) {
                    let script = format!("{PRELUDE}\n{line}");
                    let job = Job::builder(script).timeout(timeout).build().unwrap();
                    let start = Instant::now();
                    let result = sandbox.run(&job, None).map(|done| done.output);
                    let took = start.elapsed();
                    let failure = match &result {
                        Err(ScriptError::Panic(message)) => {
                            Some(format!("{line}: panicked: {message}"))
                        }
                        // Debug builds are slow: a generous bound, far below "never".
                        _ if took > timeout + Duration::from_secs(5) => {
                            Some(format!("{line}: took {took:?}"))
                        }
                        _ => None,
                    };
                    let _ = events.send((i, failure));
                }
            })
            .unwrap();
    }
    drop(events);
    let mut failures = Vec::new();
    let mut done = vec![false; calls.len()];
    for _ in 0..calls.len() {
        match reports.recv_timeout(Duration::from_secs(60)) {
            Ok((i, failure)) => {
                done[i] = true;
                failures.extend(failure);
            }
            Err(_) => {
                let stuck: Vec<&String> = (0..calls.len())
                    .filter(|&i| !done[i])
                    .take(2)
                    .map(|i| &calls[i])
                    .collect();
                panic!("a call never returned (the first unfinished: {stuck:?})");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} calls failed:\n{}",
        failures.len(),
        calls.len(),
        failures.join("\n")
    );
}

#[test]
fn sleep_honours_the_timeout_and_the_cancel_in_every_form() {
    let s = sandbox(limits());
    for script in [
        "sleep(100)",
        "sleep(100.0)",
        "sleep(1e300)",
        "sleep(1.0 / 0.0)",
        "sleep(9223372036854775807)",
        "100.sleep()",
        "Fn(\"sleep\").call(100)",
        "call(Fn(\"sleep\"), 100)",
        "[100].map(Fn(\"sleep\"))",
        "[100].for_each(Fn(\"sleep\"))",
        "[1, 2].sort(|a, b| { sleep(100); 0 })",
        "fn f() { sleep(100) } f()",
    ] {
        ends_at_its_timeout(&s, script);
    }
    for script in ["sleep(-1)", "sleep(0.0 / 0.0)", "sleep(-1e300)", "sleep(0)"] {
        let (result, took) = run(&s, &format!("{script}; 7"), Duration::from_secs(1));
        assert_eq!(result, Ok("7".into()), "{script}");
        assert!(took < Duration::from_millis(500), "{script}: {took:?}");
    }
}

#[test]
fn single_calls_cannot_allocate_far_past_the_limits() {
    let small = Limits {
        max_string_size: 1 << 20,
        max_array_size: 10_000,
        max_map_size: 10_000,
        ..limits()
    };
    let s = sandbox(small);
    let big = r#"let s = "x"; s.pad(1000000, "y");"#;
    let cases = [
        // replace: length × length.
        (
            format!(r#"{big} s.replace("", s); s.len()"#),
            Limit::StringSize,
        ),
        (
            format!(r#"{big} s.replace('x', s); s.len()"#),
            Limit::StringSize,
        ),
        (
            format!(r#"{big} s.replace("y", s); s.len()"#),
            Limit::StringSize,
        ),
        // split and to_chars: a piece per character.
        (format!(r#"{big} s.split("").len()"#), Limit::ArraySize),
        (format!(r#"{big} s.split_rev("").len()"#), Limit::ArraySize),
        (format!(r#"{big} s.split('y').len()"#), Limit::ArraySize),
        (format!(r#"{big} s.to_chars().len()"#), Limit::ArraySize),
        // pad with unchecked arithmetic.
        (
            "[].pad(4611686018427387904, [1, 2, 3])".to_string(),
            Limit::ArraySize,
        ),
        (
            "let a = []; a.pad(9000, 0); [].pad(35184372088832, a)".to_string(),
            Limit::ArraySize,
        ),
        (format!(r#"{big} [].pad(9000, s)"#), Limit::StringSize),
        // Escapes of control characters: up to 6 bytes each.
        (
            r#"let s = "\u0000"; s.pad(500000, "\u0001"); s.to_debug().len()"#.to_string(),
            Limit::StringSize,
        ),
        // Text of a map of many references to one string.
        (
            format!(
                r#"{big} let m = #{{}}; for i in 0..100 {{ m[`k${{i}}`] = s; }} m.to_json().len()"#
            ),
            Limit::StringSize,
        ),
        (
            format!(
                r#"{big} let m = #{{}}; for i in 0..100 {{ m[`k${{i}}`] = s; }} ("" + m).len()"#
            ),
            Limit::StringSize,
        ),
        // JSON bigger than the limits.
        (
            r#"let p = "1,"; p.pad(30000, "1,"); parse_json("[" + p + "1]").len()"#.to_string(),
            Limit::ArraySize,
        ),
        // Copies of a map with a large key (keys count in no size limit).
        (
            format!(r#"{big} let m = #{{}}; m[s] = 1; [].pad(9000, m)"#),
            Limit::Memory,
        ),
        // Map keys, which no size limit counts: the memory limit does.
        (
            format!(r#"{big} let m = #{{}}; let i = 0; loop {{ m[s + i] = (); i += 1; }}"#),
            Limit::Memory,
        ),
    ];
    for (script, limit) in cases {
        let (result, took) = run(&s, &script, Duration::from_secs(20));
        assert_eq!(limit_of(&result), Some(limit), "{script}: {result:?}");
        assert!(took < Duration::from_secs(15), "{script}: {took:?}");
    }
}

#[test]
fn comparers_that_time_out_end_the_sort() {
    let s = sandbox(limits());
    for script in [
        "let a = []; a.pad(10000, 1); a.sort(|x, y| { loop {} })",
        "let a = []; a.pad(10000, 1); a.dedup(|x, y| { loop {} })",
        "let a = []; a.pad(10000, 1); a.order(|x, y| { loop {} })",
        "fn spin(x, y) { loop {} } let a = []; a.pad(10000, 1); a.sort(\"spin\")",
        "fn spin(x, y) { loop {} } let a = []; a.pad(10000, 1); a.dedup(\"spin\")",
    ] {
        ends_at_its_timeout(&s, script);
    }
    let long = r#"let n = "x"; n.pad(1000000, "y"); let a = []; a.pad(10000, 1); a.dedup(n)"#;
    let (result, took) = run(&s, long, Duration::from_secs(1));
    assert!(
        result.is_err() && took < Duration::from_secs(3),
        "{result:?} {took:?}"
    );
    // Rhai's forms still work.
    let (sorted, _) = run(
        &s,
        "let a = [3, 1, 2]; a.sort(|x, y| x - y); a",
        Duration::from_secs(5),
    );
    assert_eq!(sorted, Ok("[1,2,3]".into()));
    let (dedup, _) = run(
        &s,
        "let a = [1, 1, 2, 2, 1]; a.dedup(); a",
        Duration::from_secs(5),
    );
    assert_eq!(dedup, Ok("[1,2,1]".into()));
}

#[test]
fn walks_over_a_container_grown_past_the_limits_stop_at_the_timeout() {
    // Index assignment checks the item, not the array it grows: 2,000 references to one
    // 8 MB string, far past the string limit, and no error yet.
    let s = sandbox(limits());
    let grown = r#"let big = "x"; big.pad(8000000, "y"); let other = big + "z";
        let a = []; a.pad(2000, 0); for i in 0..2000 { a[i] = big; }"#;
    // Building it takes about a second: a timeout of 5 s, and the walks would take minutes.
    for walk in [
        "a.contains(other)",
        "a.index_of(other)",
        "a == a",
        "a.dedup(); a",
    ] {
        let script = format!("{grown} {walk}");
        let (result, took) = run(&s, &script, Duration::from_secs(5));
        // It may end (comparing a string with itself is quick), or stop at the timeout, or at
        // the string limit when Rhai checks the array after the call: but never run on.
        assert!(
            matches!(
                result,
                Ok(_)
                    | Err(ScriptError::Timeout(_)
                        | ScriptError::Limit {
                            limit: Limit::StringSize,
                            ..
                        })
            ),
            "{walk}: {result:?}"
        );
        assert!(took < Duration::from_secs(9), "{walk}: {took:?}");
    }
    // A sort checks the strings first, so it ends at the string limit: the timeout only
    // leaves room for building the array on a loaded machine.
    for walk in ["a.sort(); 1", "a.order(); 1", "a.sort_desc(); 1"] {
        let (result, took) = run(&s, &format!("{grown} {walk}"), Duration::from_secs(30));
        assert_eq!(
            limit_of(&result),
            Some(Limit::StringSize),
            "{walk}: {result:?}"
        );
        assert!(took < Duration::from_secs(30), "{walk}: {took:?}");
    }
}

#[test]
fn parse_json_parses_json_and_never_runs_it() {
    let s = sandbox(limits());
    let (ran, _) = run(
        &s,
        r#"parse_json("{\"a\": sleep(5)}")"#,
        Duration::from_secs(2),
    );
    assert!(
        matches!(&ran, Err(ScriptError::Runtime(m)) if m.contains("invalid JSON")),
        "{ran:?}"
    );
    let (value, _) = run(
        &s,
        r#"parse_json("{\"a\": [1, 2.5, \"x\", null, true], \"b\": {\"c\": 18446744073709551615}}")"#,
        Duration::from_secs(2),
    );
    let value = value.unwrap();
    assert!(
        value.starts_with(r#"{"a":[1,2.5,"x",null,true],"b":{"c":1.8446744073709552e"#),
        "{value}"
    );
    // Nested deeper than the parser allows: an error, not a stack overflow.
    let deep = format!(r#"let j = "{}"; parse_json(j)"#, "[".repeat(100_000));
    let (result, _) = run(&s, &deep, Duration::from_secs(5));
    assert!(matches!(result, Err(ScriptError::Runtime(_))), "{result:?}");
}

#[test]
fn eval_curry_and_capturing_closures_are_refused_and_plain_closures_work() {
    let s = sandbox(limits());
    for script in [
        r#"eval("1")"#,
        r#"let s = "eval(s)"; eval(s)"#,
        r#"Fn("eval").call("1")"#,
        r#"fn id(x) { x } Fn("id").curry(1).call()"#,
        r#"fn id(x) { x } curry(Fn("id"), 1)"#,
        r#"let n = "cur"; n += "ry"; Fn(n).call(Fn("x"), 1)"#,
    ] {
        let (result, _) = run(&s, script, Duration::from_secs(2));
        assert!(
            matches!(
                &result,
                Err(ScriptError::Compile(_) | ScriptError::Runtime(_))
            ),
            "{script}: {result:?}"
        );
    }
    let (capture, _) = run(
        &s,
        "let y = 2; let f = |x| x + y; f.call(1)",
        Duration::from_secs(2),
    );
    assert!(
        matches!(&capture, Err(ScriptError::Compile(m)) if m.contains("capture")),
        "{capture:?}"
    );
    let (cycle, _) = run(
        &s,
        "let a = #{}; let f = || a; a.f = f; 1",
        Duration::from_secs(2),
    );
    assert!(matches!(cycle, Err(ScriptError::Compile(_))), "{cycle:?}");
    let (plain, _) = run(&s, "[1, 2, 3].map(|x| x * 2)", Duration::from_secs(2));
    assert_eq!(plain, Ok("[2,4,6]".into()));
    let (exit, _) = run(&s, "exit(41 + 1); 0", Duration::from_secs(2));
    assert_eq!(exit, Ok("42".into()));
}

#[test]
fn the_deepest_recursion_the_limits_allow_ends_with_a_limit_not_an_overflow() {
    let deepest = Limits {
        max_call_depth: Limits::MAX_DEPTH,
        max_expr_depth: Limits::MAX_DEPTH,
        ..limits()
    };
    let s = sandbox(deepest);
    let nested = format!(
        "fn f(n) {{ {}f(n + 1){} }} f(0)",
        "(1 + ".repeat(120),
        ")".repeat(120)
    );
    for script in [
        "fn f(n) { f(n + 1) } f(0)".to_string(),
        "fn f(n) { 1 + f(n + 1) } f(0)".to_string(),
        "fn f(n) { [n].map(|x| f(x + 1)) } f(0)".to_string(),
        "fn g(x, y) { f(x + 1); 0 } fn f(n) { let a = [n, n]; a.sort(Fn(\"g\")); a } f(0)"
            .to_string(),
        nested,
    ] {
        let (result, _) = run(&s, &script, Duration::from_secs(30));
        // The limits end it, not the stack guard: the stack given holds them.
        assert!(
            matches!(limit_of(&result), Some(Limit::CallDepth | Limit::ExprDepth)),
            "{script}: {result:?}"
        );
    }
}

#[test]
fn compiling_is_held_to_the_timeout_and_the_memory_limit() {
    // Shapes the parser takes time quadratic in their length for, and an AST far larger
    // than its text.
    let s = sandbox(Limits {
        max_memory: 16 << 20,
        ..limits()
    });
    let many_functions: String = (0..20_000)
        .map(|i| format!("fn f{i}(a, b) {{ a }}\n"))
        .collect();
    let many_variables: String = (0..40_000).map(|i| format!("let b{i} = {i};\n")).collect();
    let wide: String =
        "x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x+x;\n".repeat(15_000);
    for script in [
        many_functions,
        many_variables,
        format!("let x = 1;\n{wide}"),
    ] {
        let (result, took) = run(&s, &script, Duration::from_secs(1));
        assert!(
            matches!(
                result,
                Err(ScriptError::Timeout(_)
                    | ScriptError::Limit {
                        limit: Limit::Memory,
                        ..
                    })
            ),
            "{result:?}"
        );
        assert!(took < Duration::from_secs(4), "{took:?}");
    }
}
