//! [`Sandbox`]: one engine, its limits, its compile cache, and how a script is run.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, ParseErrorType, Scope};
use tracing::warn;

use super::cache::{AST_BYTES_PER_SOURCE_BYTE, Cache};
use super::render::{Style, render, render_counted};
use super::run::{self, Stop};
use super::{Limit, Limits, memory, natives, stack};
use crate::jobs::Job;
use crate::signal::reason::panic_message;

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
    /// A native function it called panicked. The engine it ran on is not reused.
    #[error("panic: {0}")]
    Panic(String),
}

/// Registers functions on a sandbox's engine: see [`SandboxConfig::extend`].
pub type Extend = Arc<dyn Fn(&mut Engine) + Send + Sync>;

/// Bytes of compiled scripts a sandbox keeps by default (32 MiB).
pub const DEFAULT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A sandbox's settings.
#[derive(Clone)]
pub struct SandboxConfig {
    /// The limits (brought into their ranges: see [`Limits::clamped`]).
    pub limits: Limits,
    /// What scripts see as `DB_PATH`.
    pub db_path: String,
    /// Constants every script sees, as `NAME`: the runner's settings (a job's own env var of
    /// the same name is hidden by it). Names as [`JobBuilder::env`](crate::jobs::JobBuilder::env)
    /// checks them.
    pub env: Vec<(String, String)>,
    /// The directory `import` may read modules from; `None`: `import` fails. A module path
    /// is plain names under it (`import "lib/math"` reads `DIR/lib/math.rhai`); a path with
    /// `..`, an absolute one, or a file that leads outside (a symlink out) is refused. Module
    /// files are read as [`read_source`](super::read_source) reads (no blocking, regular files
    /// only, at most `max_module_bytes`) and checked as scripts are.
    pub module_dir: Option<PathBuf>,
    /// The largest module file `import` reads, in bytes (default 1 MiB).
    pub max_module_bytes: usize,
    /// Bytes of compiled scripts to keep for reuse (0: none). An entry counts what compiling
    /// it allocated (with [`CountingAllocator`](super::CountingAllocator) installed), or 160
    /// bytes per byte of script text otherwise, plus its text.
    pub cache_bytes: usize,
    /// Registers the embedder's own functions on the engine (the sandbox's only door: what
    /// is registered here is what scripts can reach). They run under the same limits; one
    /// that blocks should return when [`Sandbox::should_stop`] says so.
    pub extend: Option<Extend>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            limits: Limits::default(),
            db_path: String::new(),
            env: Vec::new(),
            module_dir: None,
            max_module_bytes: crate::jobs::DEFAULT_MAX_SCRIPT_BYTES,
            cache_bytes: DEFAULT_CACHE_BYTES,
            extend: None,
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("limits", &self.limits)
            .field("db_path", &self.db_path)
            .field("env", &self.env)
            .field("module_dir", &self.module_dir)
            .field("cache_bytes", &self.cache_bytes)
            .field("extend", &self.extend.is_some())
            .finish()
    }
}

/// What a finished script left: its output and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptOutput {
    /// The last value, as text.
    pub output: String,
    /// `print` and `debug` lines, in order (cut at the log limit, with a last line saying
    /// how much was dropped).
    pub log: Vec<String>,
}

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
///
/// // Rhai's `sleep` honours the job's timeout too.
/// let sleepy = Job::builder("sleep(3600)").timeout(Duration::from_secs(1)).build().unwrap();
/// assert!(matches!(sandbox.run(&sleepy, None), Err(ScriptError::Timeout(_))));
/// ```
pub struct Sandbox {
    engine: Engine,
    limits: Limits,
    db_path: String,
    env: Vec<(String, String)>,
    cache: Mutex<Cache>,
    imports: bool,
    /// The stack a run needs: below it, a run gets a thread of its own.
    stack_needed: usize,
    /// The stack a run keeps free below its guard (see `stack::keep`).
    stack_kept: usize,
}

impl Sandbox {
    /// Builds the engine: Rhai's standard library, less `eval`, with the replacements listed
    /// in the module docs, the limits, and the embedder's functions.
    pub fn new(config: SandboxConfig) -> Self {
        let limits = config.limits.clamped();
        super::ticker::start();
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth)
            .set_max_string_size(limits.max_string_size)
            .set_max_array_size(limits.max_array_size)
            .set_max_map_size(limits.max_map_size)
            .on_print(run::log_line)
            .on_debug(|text, source, position| {
                let at = match source {
                    Some(source) => format!("{source} {position}"),
                    None => format!("{position}"),
                };
                run::log_line(&format!("[debug {at}] {text}"));
            })
            .on_progress(run::progress)
            // Constant folding builds values at compile time with no size check (gigabytes
            // from a few hundred kilobytes of script), and some of its passes are quadratic.
            .set_optimization_level(rhai::OptimizationLevel::None);
        // Compiling has no progress callback; the tokenizer's hook checks the run's timeout,
        // cancel, memory and stack as the parser consumes tokens (some shapes of script
        // take the parser time quadratic in their length).
        #[allow(deprecated)] // "Volatile", not deprecated, in Rhai's words.
        engine.on_parse_token(|token, _, _| run::parse_token(token));
        // `eval` compiles text at run time, past the checks made when a script is compiled;
        // `curry` nests values in function pointers, unchecked by the size limits.
        engine.disable_symbol("eval").disable_symbol("curry");
        natives::register(&mut engine);
        match &config.module_dir {
            Some(dir) => {
                engine.set_module_resolver(super::modules::ModuleDir::new(
                    dir,
                    config.max_module_bytes,
                ));
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
            stack_needed: stack::stack_size(&limits),
            stack_kept: stack::keep(&limits),
            limits,
            db_path: config.db_path,
            env: config.env,
            cache: Mutex::new(Cache::new(config.cache_bytes)),
            imports: config.module_dir.is_some(),
        }
    }

    /// The stack, in bytes, a thread needs to run scripts under `limits` (their recursion
    /// grows with the depth limits and with the array and map sizes, which bound how deeply
    /// values nest). Give the runtime's blocking threads this much
    /// ([`Builder::blocking_stack_size`](crate::Builder::blocking_stack_size)); a
    /// sandbox called on a thread with less runs each script on a thread of its own, which
    /// is slower.
    pub fn stack_size(limits: &Limits) -> usize {
        stack::stack_size(limits)
    }

    /// The compiled scripts it keeps: how many, and their bytes (what compiling them
    /// allocated, or an estimate: see [`SandboxConfig::cache_bytes`]).
    pub fn cached(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        (cache.len(), cache.bytes())
    }

    /// The limits it enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// For a native function registered with [`SandboxConfig::extend`] that waits: whether
    /// the script calling it should stop (its timeout passed, it was cancelled, or it reached
    /// a limit). Such a function should then return an error soon.
    pub fn should_stop() -> bool {
        run::should_stop().is_some()
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
        // A thread given `stack_needed` has used a little of it before it gets here. Where
        // a thread's stack cannot be known (outside Linux), each run gets a thread of its own.
        let room = stack::remaining();
        if room.is_some_and(|room| room >= self.stack_needed - stack::ENTRY_SLACK) {
            return self.run_here(job, cancel);
        }
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            warn!(
                needed = self.stack_needed,
                "a script runs on a thread with too little stack for its limits, so each gets a \
                 thread of its own; give the runtime's blocking threads more stack \
                 (Builder::blocking_stack_size, Sandbox::stack_size)"
            );
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("baobab-script".into())
                .stack_size(self.stack_needed)
                .spawn_scoped(scope, || self.run_here(job, cancel))
                .map(|thread| {
                    thread
                        .join()
                        .unwrap_or_else(|panic| (Err(panicked(&*panic)), Vec::new()))
                })
                .unwrap_or_else(|error| {
                    (
                        Err(ScriptError::Runtime(format!(
                            "no thread to run the script on: {error}"
                        ))),
                        Vec::new(),
                    )
                })
        })
    }

    fn run_here(
        &self,
        job: &Job,
        cancel: Option<Arc<AtomicBool>>,
    ) -> (Result<String, ScriptError>, Vec<String>) {
        let deadline = Instant::now()
            .checked_add(job.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
        // The run covers compiling too: its timeout, memory and stack hold there as well.
        let run = run::start(&self.limits, self.stack_kept, deadline, cancel);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let ast = self.compile(&job.script)?;
            let mut scope = self.scope(job);
            match self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast) {
                Ok(value) => self.output(value).map(Ok),
                // `exit(value)` ends the script with that value.
                Err(error) => match *error {
                    EvalAltResult::Exit(value, _) => self.output(value).map(Ok),
                    error => Ok(Err(error)),
                },
            }
        }));
        let ended = run.end();
        let result = match result {
            Ok(Ok(Ok(output))) => match ended.stopped {
                // A limit reached in the last operation, before the engine looked again.
                Some(stop) => Err(self.stopped(stop, job.timeout)),
                None => Ok(output),
            },
            Ok(Ok(Err(error))) => Err(self.error_of(error, ended.stopped.as_ref(), job.timeout)),
            Ok(Err(error)) => Err(match ended.stopped {
                Some(stop) => self.stopped(stop, job.timeout),
                None => error,
            }),
            Err(panic) => Err(panicked(&*panic)),
        };
        (result, ended.log)
    }

    fn scope(&self, job: &Job) -> Scope<'static> {
        let mut scope = Scope::new();
        scope
            .push_constant("JOB_ID", job.id.clone())
            .push_constant("CALLER_ID", job.caller_id.clone())
            .push_constant("CONTEXT_ID", job.context_id.clone())
            .push_constant("DB_PATH", self.db_path.clone());
        for (name, value) in &job.env_vars {
            scope.push_constant(name.as_str(), value.clone());
        }
        // The runner's own, after the job's: the later constant is the one a script sees.
        for (name, value) in &self.env {
            scope.push_constant(name.as_str(), value.clone());
        }
        scope
    }

    fn compile(&self, script: &str) -> Result<Arc<AST>, ScriptError> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(ast) = cache.get(script) {
            return Ok(ast);
        }
        drop(cache);
        let before = memory::net();
        let ast = self
            .engine
            .compile(script)
            .map_err(|error| match error.err_type() {
                ParseErrorType::ExprTooDeep => self.limit_error(Limit::ExprDepth),
                _ => ScriptError::Compile(error.to_string()),
            })?;
        check_no_captures(&ast)?;
        let size = if memory::memory_counted() {
            usize::try_from(memory::net() - before).unwrap_or(0)
        } else {
            script.len().saturating_mul(AST_BYTES_PER_SOURCE_BYTE)
        };
        let ast = Arc::new(ast);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(script, &ast, size);
        Ok(ast)
    }

    /// A script's value as the job's output, within the output limit. Its sizes are checked
    /// too: Rhai does not check a map or array grown by index assignment.
    fn output(&self, value: Dynamic) -> Result<String, ScriptError> {
        if let Some(stop) = run::stopped() {
            return Err(self.stopped(stop, Duration::ZERO));
        }
        if value.is_unit() {
            return Ok(String::new());
        }
        let style = if value.is_array() || value.is_map() {
            Style::Json
        } else {
            Style::Display
        };
        let (text, sizes) = render_counted(value, style, self.limits.max_output_size);
        use natives::over;
        if over(sizes.arrays, self.limits.max_array_size) {
            return Err(self.limit_error(Limit::ArraySize));
        }
        if over(sizes.maps, self.limits.max_map_size) {
            return Err(self.limit_error(Limit::MapSize));
        }
        if over(sizes.strings, self.limits.max_string_size) && style == Style::Json {
            return Err(self.limit_error(Limit::StringSize));
        }
        text.ok_or_else(|| self.limit_error(Limit::OutputSize))
    }

    fn limit_error(&self, limit: Limit) -> ScriptError {
        ScriptError::Limit {
            limit,
            value: self.limits.of(limit),
        }
    }

    fn stopped(&self, stop: Stop, timeout: Duration) -> ScriptError {
        match stop {
            Stop::Timeout => ScriptError::Timeout(timeout),
            Stop::Cancelled => ScriptError::Cancelled,
            Stop::Limit(limit) => self.limit_error(limit),
        }
    }

    fn error_of(
        &self,
        error: EvalAltResult,
        stopped: Option<&Stop>,
        timeout: Duration,
    ) -> ScriptError {
        if let Some(stop) = stopped {
            // The sandbox stopped it (the engine's error is only the way out).
            return self.stopped(stop.clone(), timeout);
        }
        let limit = |limit: Limit| self.limit_error(limit);
        match error {
            EvalAltResult::ErrorTerminated(..) => ScriptError::Timeout(timeout),
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
                let text = render(value, Style::Display, 4096)
                    .unwrap_or_else(|| "(a thrown value too long to show)".to_string());
                ScriptError::Runtime(format!("{text} ({position})"))
            }
            EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
            | EvalAltResult::ErrorInModule(_, inner, _) => self.error_of(*inner, None, timeout),
            other => ScriptError::Runtime(other.to_string()),
        }
    }
}

/// Refuses a script whose closures capture variables: a captured variable is shared, and
/// shared values can refer to each other in a cycle, which is never freed (a script could
/// leak memory the runner never gets back). Anonymous functions that capture nothing are
/// fine; a value can be passed to one as a parameter.
pub(crate) fn check_no_captures(ast: &AST) -> Result<(), ScriptError> {
    let mut captures = false;
    ast.walk(&mut |nodes: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(rhai::Stmt::Share(..))) = nodes.last() {
            captures = true;
            return false;
        }
        true
    });
    if captures {
        return Err(ScriptError::Compile(
            "closures may not capture variables in the sandbox (captured variables can form \
             reference cycles that are never freed): pass the value as a parameter"
                .into(),
        ));
    }
    Ok(())
}

fn panicked(payload: &(dyn std::any::Any + Send)) -> ScriptError {
    ScriptError::Panic(panic_message(payload).to_string())
}
