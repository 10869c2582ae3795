//! The sandboxed Rhai engine jobs run in (feature `rhai`).
//!
//! A [`Sandbox`] is one engine, built once, with:
//! - no file, process or network access: `print` and `debug` go to the job's log, and `import`
//!   fails unless the sandbox is given a directory modules may be read from;
//! - [`Limits`] on operations, call depth, expression depth, string, array and map sizes, all
//!   enforced by Rhai, and a wall-clock timeout and a cancel flag checked from the engine's
//!   progress callback, so even `loop {}` ends on time;
//! - the job context as constants: `JOB_ID`, `CALLER_ID`, `CONTEXT_ID`, `DB_PATH` and the job's
//!   env vars;
//! - a bounded cache of compiled scripts, keyed by their text.
//!
//! A script's last value is its output: text as is, `()` as the empty string, maps and arrays
//! as JSON.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, ParseErrorType, Scope};

/// The Rhai crate this sandbox is built on, for [`SandboxConfig::extend`].
pub use rhai;

use crate::jobs::Job;

/// The limits a script runs under. Every one is enforced; a script that reaches one fails
/// with [`ScriptError::Limit`] naming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Operations (Rhai's unit of work) per run.
    pub max_operations: u64,
    /// Depth of nested function calls.
    pub max_call_depth: usize,
    /// Depth of nested expressions (checked when compiling).
    pub max_expr_depth: usize,
    /// Bytes in a string.
    pub max_string_size: usize,
    /// Elements in an array.
    pub max_array_size: usize,
    /// Entries in a map.
    pub max_map_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000_000,
            max_call_depth: 64,
            max_expr_depth: 64,
            max_string_size: 10 * 1024 * 1024,
            max_array_size: 1_000_000,
            max_map_size: 1_000_000,
        }
    }
}

/// Which limit a script reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Limits::max_operations`].
    Operations,
    /// [`Limits::max_call_depth`].
    CallDepth,
    /// [`Limits::max_expr_depth`].
    ExprDepth,
    /// [`Limits::max_string_size`].
    StringSize,
    /// [`Limits::max_array_size`].
    ArraySize,
    /// [`Limits::max_map_size`].
    MapSize,
}

impl Limit {
    /// The limit's name, as the runner's flags spell it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Operations => "max-operations",
            Limit::CallDepth => "max-call-depth",
            Limit::ExprDepth => "max-expr-depth",
            Limit::StringSize => "max-string-size",
            Limit::ArraySize => "max-array-size",
            Limit::MapSize => "max-map-size",
        }
    }

    fn of(self, limits: &Limits) -> u64 {
        match self {
            Limit::Operations => limits.max_operations,
            Limit::CallDepth => limits.max_call_depth as u64,
            Limit::ExprDepth => limits.max_expr_depth as u64,
            Limit::StringSize => limits.max_string_size as u64,
            Limit::ArraySize => limits.max_array_size as u64,
            Limit::MapSize => limits.max_map_size as u64,
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a script did not produce an output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// It does not compile.
    #[error("compile error: {0}")]
    Compile(String),
    /// It failed while running (a thrown value, a type error, a missing function...).
    #[error("runtime error: {0}")]
    Runtime(String),
    /// It reached a limit.
    #[error("limit exceeded: {limit} ({value})")]
    Limit {
        /// Which.
        limit: Limit,
        /// The limit's value.
        value: u64,
    },
    /// It ran past its wall-clock timeout.
    #[error("timeout: still running after {0:?}")]
    Timeout(Duration),
    /// It was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// It tried to import a module and imports are not allowed.
    #[error("import is not allowed: {0} (the runner has no module directory)")]
    ImportDenied(String),
}

/// Registers functions on a sandbox's engine: see [`SandboxConfig::extend`].
pub type Extend = Arc<dyn Fn(&mut Engine) + Send + Sync>;

/// A sandbox's settings.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The limits.
    pub limits: Limits,
    /// What scripts see as `DB_PATH`.
    pub db_path: String,
    /// The directory `import` may read modules from; `None`: `import` fails.
    pub module_dir: Option<PathBuf>,
    /// How many compiled scripts to keep.
    pub cache_size: usize,
    /// Registers the embedder's own functions on the engine (the sandbox's only door: what
    /// is registered here is what scripts can reach).
    pub extend: Option<Extend>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            db_path: String::new(),
            module_dir: None,
            cache_size: 1024,
            extend: None,
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("limits", &self.limits)
            .field("db_path", &self.db_path)
            .field("module_dir", &self.module_dir)
            .field("cache_size", &self.cache_size)
            .field("extend", &self.extend.is_some())
            .finish()
    }
}

/// What a finished script left: its output and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOutput {
    /// The last value, as text.
    pub output: String,
    /// `print` and `debug` lines, in order.
    pub log: Vec<String>,
}

/// The state of the run on this thread, seen by the engine's callbacks.
struct Run {
    deadline: Instant,
    cancel: Option<Arc<AtomicBool>>,
    log: Vec<String>,
    stopped: Option<ScriptError>,
}

thread_local! {
    static RUN: RefCell<Option<Run>> = const { RefCell::new(None) };
}

/// How often (in operations) the progress callback looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// One sandboxed engine. `Sync`: several threads may run scripts on it at once.
///
/// ```
/// use std::time::Duration;
/// use baobab::jobs::Job;
/// use baobab::script::{Sandbox, SandboxConfig, ScriptError};
///
/// let sandbox = Sandbox::new(SandboxConfig::default());
/// let job = Job::builder(r#"print("thinking"); 40 + 2"#).build().unwrap();
/// let done = sandbox.run(&job, None).unwrap();
/// assert_eq!(done.output, "42");
/// assert_eq!(done.log, ["thinking"]);
///
/// let forever = Job::builder("loop {}").timeout(Duration::from_secs(1)).build().unwrap();
/// assert!(matches!(sandbox.run(&forever, None), Err(ScriptError::Timeout(_))));
/// ```
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    db_path: String,
    cache: Mutex<Cache>,
    imports: bool,
}

struct Cache {
    compiled: HashMap<Arc<str>, Arc<AST>>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl Sandbox {
    /// Builds the engine.
    pub fn new(config: SandboxConfig) -> Self {
        let limits = config.limits.clone();
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .on_print(|text| log_line(text.to_string()))
            .on_debug(|text, source, position| {
                let at = match source {
                    Some(source) => format!("{source} {position}"),
                    None => format!("{position}"),
                };
                log_line(format!("[debug {at}] {text}"));
            })
            .on_progress(progress);
        match &config.module_dir {
            Some(dir) => {
                engine.set_module_resolver(
                    rhai::module_resolvers::FileModuleResolver::new_with_path(dir.clone()),
                );
            }
            None => {
                engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
            }
        }
        if let Some(extend) = &config.extend {
            extend(&mut engine);
        }
        Sandbox {
            engine,
            limits,
            db_path: config.db_path,
            cache: Mutex::new(Cache {
                compiled: HashMap::new(),
                order: VecDeque::new(),
                capacity: config.cache_size.max(1),
            }),
            imports: config.module_dir.is_some(),
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn compile(&self, script: &str) -> Result<Arc<AST>, ScriptError> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ast) = cache.compiled.get(script) {
            return Ok(Arc::clone(ast));
        }
        drop(cache);
        let ast = Arc::new(self.engine.compile(script).map_err(
            |error| match error.err_type() {
                ParseErrorType::ExprTooDeep => self.limit_error(Limit::ExprDepth),
                _ => ScriptError::Compile(error.to_string()),
            },
        )?);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.compiled.len() >= cache.capacity
            && let Some(oldest) = cache.order.pop_front()
        {
            cache.compiled.remove(&oldest);
        }
        let key: Arc<str> = Arc::from(script);
        if cache
            .compiled
            .insert(Arc::clone(&key), Arc::clone(&ast))
            .is_none()
        {
            cache.order.push_back(key);
        }
        Ok(ast)
    }

    /// Runs `job`'s script with its context and its timeout; `cancel` (if given) stops it
    /// when set.
    pub fn run(
        &self,
        job: &Job,
        cancel: Option<Arc<AtomicBool>>,
    ) -> Result<ScriptOutput, ScriptError> {
        let (result, log) = self.run_logged(job, cancel);
        result.map(|output| ScriptOutput { output, log })
    }

    /// [`run`](Self::run), keeping what the script printed whether or not it succeeded.
    pub fn run_logged(
        &self,
        job: &Job,
        cancel: Option<Arc<AtomicBool>>,
    ) -> (Result<String, ScriptError>, Vec<String>) {
        match self.compile(&job.script) {
            Ok(ast) => self.eval(job, &ast, cancel),
            Err(error) => (Err(error), Vec::new()),
        }
    }

    fn eval(
        &self,
        job: &Job,
        ast: &AST,
        cancel: Option<Arc<AtomicBool>>,
    ) -> (Result<String, ScriptError>, Vec<String>) {
        let mut scope = Scope::new();
        scope
            .push_constant("JOB_ID", job.id.clone())
            .push_constant("CALLER_ID", job.caller_id.clone())
            .push_constant("CONTEXT_ID", job.context_id.clone())
            .push_constant("DB_PATH", self.db_path.clone());
        for (name, value) in &job.env_vars {
            scope.push_constant(name.as_str(), value.clone());
        }
        let deadline = Instant::now()
            .checked_add(job.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        let previous = RUN.with(|run| {
            run.borrow_mut().replace(Run {
                deadline,
                cancel,
                log: Vec::new(),
                stopped: None,
            })
        });
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, ast);
        let run = RUN
            .with(|run| std::mem::replace(&mut *run.borrow_mut(), previous))
            .expect("set above");
        let result = match result {
            Ok(value) => self.check_output(&value).map(|()| to_output(value)),
            Err(error) => Err(self.error_of(*error, run.stopped, job.timeout)),
        };
        (result, run.log)
    }

    fn limit_error(&self, limit: Limit) -> ScriptError {
        ScriptError::Limit {
            limit,
            value: limit.of(&self.limits),
        }
    }

    /// Rhai checks sizes when values pass through functions and operators, not when an index
    /// assignment adds a map key; the output is checked here so no oversized value leaves.
    fn check_output(&self, value: &Dynamic) -> Result<(), ScriptError> {
        if let Some(map) = value.read_lock::<rhai::Map>()
            && map.len() > self.limits.max_map_size
        {
            return Err(self.limit_error(Limit::MapSize));
        }
        if let Some(array) = value.read_lock::<rhai::Array>()
            && array.len() > self.limits.max_array_size
        {
            return Err(self.limit_error(Limit::ArraySize));
        }
        Ok(())
    }

    fn error_of(
        &self,
        error: EvalAltResult,
        stopped: Option<ScriptError>,
        timeout: Duration,
    ) -> ScriptError {
        let limit = |limit: Limit| self.limit_error(limit);
        match error {
            EvalAltResult::ErrorTerminated(..) => stopped.unwrap_or(ScriptError::Timeout(timeout)),
            EvalAltResult::ErrorTooManyOperations(..) => limit(Limit::Operations),
            EvalAltResult::ErrorStackOverflow(..) => limit(Limit::CallDepth),
            EvalAltResult::ErrorDataTooLarge(what, ..) => {
                if what.contains("string") {
                    limit(Limit::StringSize)
                } else if what.contains("map") {
                    limit(Limit::MapSize)
                } else {
                    limit(Limit::ArraySize)
                }
            }
            EvalAltResult::ErrorModuleNotFound(name, ..) if !self.imports => {
                ScriptError::ImportDenied(name)
            }
            EvalAltResult::ErrorRuntime(value, position) => {
                ScriptError::Runtime(format!("{value} ({position})"))
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) => self.error_of(*inner, stopped, timeout),
            other => ScriptError::Runtime(other.to_string()),
        }
    }
}

fn log_line(line: String) {
    RUN.with(|run| {
        if let Some(run) = run.borrow_mut().as_mut() {
            run.log.push(line);
        }
    });
}

/// The engine's progress callback: stops the run when it is cancelled or past its deadline.
fn progress(operations: u64) -> Option<Dynamic> {
    if operations % CLOCK_EVERY != 0 {
        return None;
    }
    RUN.with(|run| {
        let mut run = run.borrow_mut();
        let run = run.as_mut()?;
        let cancelled = run
            .cancel
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed));
        if cancelled {
            run.stopped = Some(ScriptError::Cancelled);
        } else if Instant::now() >= run.deadline {
            run.stopped = None;
            return Some(Dynamic::from("timeout"));
        } else {
            return None;
        }
        Some(Dynamic::from("cancelled"))
    })
}

/// A script's value as the job's output.
fn to_output(value: Dynamic) -> String {
    if value.is_unit() {
        return String::new();
    }
    if value.is_string() {
        return value.into_string().unwrap_or_default();
    }
    if value.is_array() || value.is_map() {
        return to_json(value).to_string();
    }
    value.to_string()
}

fn to_json(value: Dynamic) -> serde_json::Value {
    use serde_json::Value;
    if value.is_unit() {
        Value::Null
    } else if let Some(b) = value.clone().try_cast::<bool>() {
        Value::Bool(b)
    } else if let Some(i) = value.clone().try_cast::<rhai::INT>() {
        Value::from(i)
    } else if let Some(f) = value.clone().try_cast::<rhai::FLOAT>() {
        serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
    } else if value.is_array() {
        let array = value.cast::<rhai::Array>();
        Value::Array(array.into_iter().map(to_json).collect())
    } else if value.is_map() {
        let map = value.cast::<rhai::Map>();
        Value::Object(
            map.into_iter()
                .map(|(key, value)| (key.to_string(), to_json(value)))
                .collect(),
        )
    } else {
        Value::String(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            max_operations: 10_000,
            max_call_depth: 8,
            max_expr_depth: 24,
            max_string_size: 100,
            max_array_size: 10,
            max_map_size: 10,
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
    fn compile_errors_and_runtime_errors_are_told_apart() {
        let s = sandbox(Limits::default());
        assert!(matches!(run(&s, "let = ;"), Err(ScriptError::Compile(_))));
        assert!(
            matches!(run(&s, r#"throw "no""#), Err(ScriptError::Runtime(m)) if m.contains("no"))
        );
        assert!(matches!(
            run(&s, "no_such_fn()"),
            Err(ScriptError::Runtime(_))
        ));
    }

    #[test]
    fn compiled_scripts_are_cached_within_a_bound() {
        let s = Sandbox::new(SandboxConfig {
            cache_size: 2,
            ..SandboxConfig::default()
        });
        for i in 0..5 {
            assert_eq!(
                run(&s, &format!("{i} + 1")).unwrap().output,
                (i + 1).to_string()
            );
        }
        let cache = s.cache.lock().unwrap();
        assert_eq!(cache.compiled.len(), 2);
        assert_eq!(cache.order.len(), 2);
    }
}
