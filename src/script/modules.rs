//! Modules for `import`, read from one directory and nowhere else.
//!
//! Rhai's own file resolver takes an absolute path or `..` as it is and reads a file whole
//! with a blocking open: `import "/tmp/x"` could run any `.rhai` file on the host, block on a
//! FIFO, or read `/dev/zero` without end. This one takes a module path only as plain names
//! under its directory (`import "lib/math"` is `DIR/lib/math.rhai`), refuses a file that
//! resolves outside it (a symlink out), reads as [`read_source`] does (no blocking, regular
//! files only, at most the script size limit), and checks a module's code as the sandbox
//! checks a script's (no capturing closures). A module is evaluated in the importing run,
//! under its limits; compiled modules are kept, a bounded number of them.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use rhai::module_resolvers::ModuleResolver;
use rhai::{AST, Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;

use super::source::read_source;

/// Compiled modules kept (the oldest first out).
const KEPT: usize = 64;

/// Resolves `import` paths to `.rhai` files under one directory.
pub(crate) struct ModuleDir {
    /// The directory, canonical.
    dir: PathBuf,
    max_bytes: usize,
    compiled: Mutex<HashMap<PathBuf, (SystemTime, std::sync::Arc<AST>)>>,
}

impl ModuleDir {
    pub(crate) fn new(dir: &Path, max_bytes: usize) -> ModuleDir {
        ModuleDir {
            dir: dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()),
            max_bytes,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The file `path` names, if it is plain names under the directory and stays there.
    fn file(&self, path: &str) -> Result<PathBuf, String> {
        let relative = Path::new(path);
        let plain = !path.is_empty()
            && relative
                .components()
                .all(|part| matches!(part, Component::Normal(_)));
        if !plain {
            return Err(format!(
                "{path:?} is not a path of plain names under the module directory"
            ));
        }
        let file = self.dir.join(relative).with_extension("rhai");
        let real = file
            .canonicalize()
            .map_err(|e| format!("{path:?}: {}", super::source::describe_io(&e)))?;
        if !real.starts_with(&self.dir) {
            return Err(format!("{path:?} leads outside the module directory"));
        }
        Ok(real)
    }

    fn ast(&self, engine: &Engine, file: &Path, path: &str) -> Result<std::sync::Arc<AST>, String> {
        let modified = std::fs::metadata(file)
            .and_then(|meta| meta.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((at, ast)) = compiled.get(file)
            && *at == modified
        {
            return Ok(std::sync::Arc::clone(ast));
        }
        drop(compiled);
        let text = read_source(file, self.max_bytes).map_err(|e| format!("{path:?}: {e}"))?;
        let mut ast = engine.compile(text).map_err(|e| format!("{path:?}: {e}"))?;
        super::sandbox::check_no_captures(&ast).map_err(|e| format!("{path:?}: {e}"))?;
        ast.set_source(path);
        let ast = std::sync::Arc::new(ast);
        compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if compiled.len() >= KEPT {
            compiled.clear();
        }
        compiled.insert(file.to_path_buf(), (modified, std::sync::Arc::clone(&ast)));
        Ok(ast)
    }
}

impl ModuleResolver for ModuleDir {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let mut global = engine.new_global_runtime_state();
        self.resolve_raw(engine, &mut global, &mut Scope::new(), path, pos)
    }

    fn resolve_raw(
        &self,
        engine: &Engine,
        global: &mut rhai::GlobalRuntimeState,
        _scope: &mut Scope,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let refused = |why: String| -> Box<EvalAltResult> {
            EvalAltResult::ErrorInModule(
                path.to_string(),
                EvalAltResult::ErrorRuntime(why.into(), pos).into(),
                pos,
            )
            .into()
        };
        let file = self.file(path).map_err(refused)?;
        let ast = self.ast(engine, &file, path).map_err(refused)?;
        // Evaluated with the importing run's state: its operations and call depth go on.
        let module = Module::eval_ast_as_new_raw(engine, &mut Scope::new(), global, &ast)?;
        Ok(module.into())
    }
}
