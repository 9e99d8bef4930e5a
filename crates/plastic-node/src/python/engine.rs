//! The engine thread, its jobs and the supervised scripts.
//!
//! An [`Interpreter`] handle owns one engine thread (started lazily); a [`PythonEngine`] is one
//! node's view of it: its namespace, its scripts, its host. A real node has an interpreter of
//! its own; `plastic sim` shares one among all its nodes, each with its own namespace, because
//! an interpreter costs about 2.5 MB and 6 ms to start and a simulated fleet has thousands.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use plastic_proto::ErrorInfo;
use rustpython_vm::builtins::PyCode;
use rustpython_vm::compiler::Mode;
use rustpython_vm::function::{FuncArgs, KwArgs};
use rustpython_vm::scope::Scope;
use rustpython_vm::{AsObject, PyObjectRef, PyRef, PyResult, Settings, VirtualMachine};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::convert::{error_info, from_json, to_json};
use super::host::Host;
use super::native::{self, Output, StopFlag, OUTPUT, STOP};

/// The outcome of one Python request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The value (and whether it is a `repr` fallback), or the exception.
    pub result: Result<(Value, bool), ErrorInfo>,
    pub stdout: String,
}

impl Outcome {
    /// A failure with nothing printed.
    pub fn error(error: ErrorInfo) -> Self {
        Outcome {
            result: Err(error),
            stdout: String::new(),
        }
    }

    fn engine_gone() -> Self {
        Outcome::error(engine_gone())
    }
}

fn engine_gone() -> ErrorInfo {
    ErrorInfo::new("EngineError", "the Python engine has stopped")
}

enum Work {
    Eval(String, oneshot::Sender<Outcome>),
    Exec(String, oneshot::Sender<Outcome>),
    Call {
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        reply: oneshot::Sender<Outcome>,
    },
    Script {
        name: String,
        source: String,
        file: String,
        entry: Arc<ScriptEntry>,
        started: oneshot::Sender<Result<(), ErrorInfo>>,
    },
    /// A module file was replaced: the next import must read it again.
    Forget(String),
    /// The node reset or went away: its namespace can go.
    Drop,
}

/// One unit of work for one node.
struct Job {
    node: Arc<NodeSlot>,
    work: Work,
    /// When the request's time to live runs out (Unix seconds): checked again when the job
    /// finally runs, since it may have waited behind a long exec.
    deadline: Option<f64>,
}

/// A node as the engine thread sees it.
struct NodeSlot {
    id: u64,
    host: Arc<dyn Host>,
    root: PathBuf,
    scripts: Mutex<BTreeMap<String, Arc<ScriptEntry>>>,
    /// One deploy at a time, so two deploys of one name cannot both end up running.
    deploying: tokio::sync::Mutex<()>,
}

struct ScriptEntry {
    id: u64,
    stop: Arc<StopFlag>,
    /// Turns true when the script's thread has ended (or it never started).
    done: tokio::sync::watch::Sender<bool>,
}

/// How long `stop` waits for a script to reach a stop point before reporting it still running.
const STOP_GRACE: Duration = Duration::from_secs(3);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One RustPython interpreter on its own thread, started on first use.
#[derive(Default)]
pub struct Interpreter {
    jobs: OnceLock<mpsc::Sender<Job>>,
}

impl Interpreter {
    pub fn new() -> Arc<Self> {
        Arc::new(Interpreter::default())
    }

    fn jobs(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("python".into())
                .stack_size(16 * 1024 * 1024)
                .spawn(move || engine_thread(rx))
                .expect("spawning the Python engine thread");
            tx
        })
    }

    fn send(&self, job: Job) -> bool {
        self.jobs().send(job).is_ok()
    }

    /// Queues work only if the thread is already running (no start just to forget things).
    fn send_if_started(&self, job: Job) {
        if let Some(tx) = self.jobs.get() {
            let _ = tx.send(job);
        }
    }
}

/// One node's Python: a namespace that persists between requests, and supervised scripts.
pub struct PythonEngine {
    interpreter: Arc<Interpreter>,
    node: Arc<NodeSlot>,
}

impl PythonEngine {
    /// A node with an interpreter of its own.
    pub fn new(host: Arc<dyn Host>, root: PathBuf) -> Self {
        Self::on(Interpreter::new(), host, root)
    }

    /// A node on a shared interpreter (its own namespace; modules are shared).
    pub fn on(interpreter: Arc<Interpreter>, host: Arc<dyn Host>, root: PathBuf) -> Self {
        let node = Arc::new(NodeSlot {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            host,
            root,
            scripts: Mutex::default(),
            deploying: tokio::sync::Mutex::new(()),
        });
        PythonEngine { interpreter, node }
    }

    async fn run(
        &self,
        deadline: Option<f64>,
        make: impl FnOnce(oneshot::Sender<Outcome>) -> Work,
    ) -> Outcome {
        let (tx, rx) = oneshot::channel();
        if !self.interpreter.send(Job {
            node: self.node.clone(),
            work: make(tx),
            deadline,
        }) {
            return Outcome::engine_gone();
        }
        rx.await.unwrap_or_else(|_| Outcome::engine_gone())
    }

    /// Evaluates `code`; a `deadline` (Unix seconds) that has passed when the job's turn comes
    /// makes it `Expired` instead.
    pub async fn eval(&self, code: String, deadline: Option<f64>) -> Outcome {
        self.run(deadline, |tx| Work::Eval(code, tx)).await
    }

    pub async fn exec(&self, code: String, deadline: Option<f64>) -> Outcome {
        self.run(deadline, |tx| Work::Exec(code, tx)).await
    }

    pub async fn call(
        &self,
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        deadline: Option<f64>,
    ) -> Outcome {
        self.run(deadline, |reply| Work::Call {
            name,
            args,
            kwargs,
            reply,
        })
        .await
    }

    /// Tells Python that the module file `module` changed, so the next `import` reads it anew.
    pub fn forget_module(&self, module: &str) {
        self.interpreter.send_if_started(Job {
            node: self.node.clone(),
            work: Work::Forget(module.to_owned()),
            deadline: None,
        });
    }

    /// Starts `source` as the script `name`. A running script of that name is stopped first;
    /// only then does `prepare` run (the node saves the file there), so a deploy refused with
    /// `ScriptBusy` changes nothing. Deploys on one node happen one at a time. Returns once the
    /// script compiled and its thread started.
    pub async fn start_script(
        &self,
        name: &str,
        source: String,
        file: String,
        prepare: impl FnOnce() -> Result<(), ErrorInfo>,
    ) -> Result<(), ErrorInfo> {
        let _one_at_a_time = self.node.deploying.lock().await;
        let still_running = self.stop_scripts(Some(name)).await.1;
        if !still_running.is_empty() {
            return Err(ErrorInfo::new(
                "ScriptBusy",
                format!("script `{name}` did not stop within {STOP_GRACE:?}; it never calls time.sleep, machine or plastic"),
            ));
        }
        prepare()?;
        let entry = Arc::new(ScriptEntry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            stop: Arc::default(),
            done: tokio::sync::watch::channel(false).0,
        });
        self.node
            .scripts
            .lock()
            .unwrap()
            .insert(name.to_owned(), entry.clone());
        let (started_tx, started_rx) = oneshot::channel();
        let work = Work::Script {
            name: name.to_owned(),
            source,
            file,
            entry,
            started: started_tx,
        };
        if !self.interpreter.send(Job {
            node: self.node.clone(),
            work,
            deadline: None,
        }) {
            return Err(engine_gone());
        }
        started_rx.await.unwrap_or_else(|_| Err(engine_gone()))
    }

    /// Stops the named script, or all: every stop flag is set first, then all are awaited
    /// together. Returns (stopped, still running after the grace time); asking again later
    /// tells the truth about the ones still running.
    pub async fn stop_scripts(&self, name: Option<&str>) -> (Vec<String>, Vec<String>) {
        let targets: Vec<(String, Arc<ScriptEntry>)> = {
            let scripts = self.node.scripts.lock().unwrap();
            scripts
                .iter()
                .filter(|(n, _)| name.is_none_or(|want| want == n.as_str()))
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect()
        };
        for (_, entry) in &targets {
            entry.stop.stop();
        }
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        let (mut stopped, mut running) = (Vec::new(), Vec::new());
        for (n, entry) in targets {
            let mut done = entry.done.subscribe();
            let ended = tokio::time::timeout_at(deadline, done.wait_for(|d| *d))
                .await
                .is_ok();
            if ended {
                stopped.push(n);
            } else {
                running.push(n);
            }
        }
        (stopped, running)
    }

    pub fn running_scripts(&self) -> Vec<String> {
        self.node.scripts.lock().unwrap().keys().cloned().collect()
    }
}

impl Drop for PythonEngine {
    fn drop(&mut self) {
        for entry in self.node.scripts.lock().unwrap().values() {
            entry.stop.stop();
        }
        self.interpreter.send_if_started(Job {
            node: self.node.clone(),
            work: Work::Drop,
            deadline: None,
        });
    }
}

fn new_interpreter() -> rustpython_vm::Interpreter {
    let mut settings = Settings::default();
    // The node owns SIGINT (graceful shutdown), not Python.
    settings.install_signal_handlers = false;
    // Path-based imports (`import functions` after an upload) need importlib's external finder.
    settings.allow_external_library = true;
    let builder = rustpython_vm::Interpreter::builder(settings);
    let defs = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    builder.add_native_modules(&defs).build()
}

fn init(vm: &VirtualMachine) -> PyResult<()> {
    let module = native::make_module(vm)?;
    vm.sys_module
        .get_attr("modules", vm)?
        .set_item("_plastic_node", module.into(), vm)?;
    // sys.path[0] is the current node's root; set per job (see `enter_node`).
    let sys_path = vm.sys_module.get_attr("path", vm)?;
    vm.call_method(&sys_path, "insert", (0, "."))?;
    let prelude = vm.new_scope_with_builtins();
    vm.run_string(
        prelude,
        include_str!("prelude.py"),
        "<plastic prelude>".to_owned(),
    )?;
    Ok(())
}

/// Per-thread state of the engine thread.
struct EngineState {
    scopes: HashMap<u64, Scope>,
    /// Compiled eval/exec sources. Fleets send the same few expressions over and over, and
    /// compiling costs more than running `2+3`. Cleared when it grows past `CODE_CACHE_SIZE`.
    code_cache: HashMap<(String, bool), PyRef<PyCode>>,
    /// The root currently in `sys.path[0]`.
    path_root: Option<PathBuf>,
}

impl EngineState {
    /// Makes `node` the current node of this thread: its host, its root on `sys.path`.
    fn enter_node(&mut self, vm: &VirtualMachine, node: &NodeSlot) -> PyResult<Scope> {
        native::set_host(node.host.clone());
        if self.path_root.as_deref() != Some(node.root.as_path()) {
            let sys_path = vm.sys_module.get_attr("path", vm)?;
            sys_path.set_item(
                &0,
                vm.ctx.new_str(node.root.to_string_lossy().as_ref()).into(),
                vm,
            )?;
            self.path_root = Some(node.root.clone());
        }
        if let Some(scope) = self.scopes.get(&node.id) {
            return Ok(scope.clone());
        }
        let scope = vm.new_scope_with_builtins();
        scope
            .globals
            .set_item("__name__", vm.ctx.new_str("__main__").into(), vm)?;
        self.scopes.insert(node.id, scope.clone());
        Ok(scope)
    }
}

fn engine_thread(jobs: mpsc::Receiver<Job>) {
    native::ON_ENGINE_THREAD.with(|t| t.set(true));
    let interp = new_interpreter();
    interp.enter(|vm| {
        if let Err(exc) = init(vm) {
            let info = error_info(vm, &exc);
            tracing::error!(traceback = %info.traceback, "Python engine failed to start");
            for job in jobs {
                fail(job.work, &info);
            }
            return;
        }
        let mut state = EngineState {
            scopes: HashMap::new(),
            code_cache: HashMap::new(),
            path_root: None,
        };
        for Job { node, work, deadline } in jobs {
            if let Some(late) = deadline.map(|d| now() - d).filter(|late| *late > 0.0) {
                let message = format!("the request's time to live ran out {late:.3} s before its turn came; it was not run");
                fail(work, &ErrorInfo::new("Expired", message));
                continue;
            }
            if let Work::Drop = work {
                state.scopes.remove(&node.id);
                continue;
            }
            let scope = match state.enter_node(vm, &node) {
                Ok(scope) => scope,
                Err(exc) => {
                    fail(work, &error_info(vm, &exc));
                    continue;
                }
            };
            match work {
                Work::Eval(code, reply) => {
                    let _ = reply.send(capture(vm, || {
                        state.run_source(vm, &scope, code, Mode::Eval)
                    }));
                }
                Work::Exec(code, reply) => {
                    let _ = reply.send(capture(vm, || {
                        state
                            .run_source(vm, &scope, code, Mode::Exec)
                            .map(|_| vm.ctx.none())
                    }));
                }
                Work::Call {
                    name,
                    args,
                    kwargs,
                    reply,
                } => {
                    let _ = reply.send(capture(vm, || call(vm, &scope, &name, &args, &kwargs)));
                }
                Work::Script {
                    name,
                    source,
                    file,
                    entry,
                    started,
                } => {
                    let _ = started.send(start_script(vm, &node, name, &source, file, entry));
                }
                Work::Forget(module) => {
                    if let Ok(modules) = vm.sys_module.get_attr("modules", vm) {
                        let _ = vm.call_method(&modules, "pop", (module, vm.ctx.none()));
                    }
                }
                Work::Drop => {}
            }
        }
    });
}

fn now() -> f64 {
    plastic_proto::unix_seconds(std::time::SystemTime::now())
}

fn fail(work: Work, info: &ErrorInfo) {
    let outcome = Outcome::error(info.clone());
    match work {
        Work::Eval(_, r) | Work::Exec(_, r) | Work::Call { reply: r, .. } => {
            let _ = r.send(outcome);
        }
        Work::Script { started, .. } => {
            let _ = started.send(Err(info.clone()));
        }
        Work::Forget(_) | Work::Drop => {}
    }
}

/// Runs `f` with printed output captured, and converts its value or exception.
fn capture(vm: &VirtualMachine, f: impl FnOnce() -> PyResult) -> Outcome {
    OUTPUT.with(|o| *o.borrow_mut() = Some(Output::Capture(String::new())));
    let result = f();
    let stdout = native::take_capture();
    let result = match result {
        Ok(obj) => Ok(to_json(vm, &obj)),
        Err(exc) => Err(error_info(vm, &exc)),
    };
    Outcome { result, stdout }
}

fn compile(vm: &VirtualMachine, source: &str, mode: Mode, file: &str) -> PyResult<PyRef<PyCode>> {
    vm.compile(source, mode, file.to_owned())
        .map_err(|err| vm.new_syntax_error(&err, Some(source)))
}

const CODE_CACHE_SIZE: usize = 256;

impl EngineState {
    fn run_source(
        &mut self,
        vm: &VirtualMachine,
        scope: &Scope,
        source: String,
        mode: Mode,
    ) -> PyResult {
        let key = (source, matches!(mode, Mode::Eval));
        let code = match self.code_cache.get(&key) {
            Some(code) => code.clone(),
            None => {
                let file = if key.1 { "<eval>" } else { "<exec>" };
                let code = compile(vm, &key.0, mode, file)?;
                if self.code_cache.len() >= CODE_CACHE_SIZE {
                    self.code_cache.clear();
                }
                self.code_cache.insert(key, code.clone());
                code
            }
        };
        vm.run_code_obj(code, scope.clone())
    }
}

/// Resolves `a.b.c` in the namespace (importing `a` if it is not there) and calls it.
fn call(
    vm: &VirtualMachine,
    scope: &Scope,
    name: &str,
    args: &[Value],
    kwargs: &Map<String, Value>,
) -> PyResult {
    let mut parts = name.split('.');
    let first = parts.next().unwrap_or_default();
    let mut target: PyObjectRef = match scope.globals.get_item_opt(first, vm)? {
        Some(obj) => obj,
        None => match vm.builtins.get_attr(&*vm.ctx.new_str(first), vm) {
            Ok(obj) => obj,
            Err(_) => vm.import(&*vm.ctx.new_str(first), 0)?,
        },
    };
    for part in parts {
        target = target.get_attr(&*vm.ctx.new_str(part), vm)?;
    }
    if !target.is_callable() {
        return Err(vm.new_type_error(format!("`{name}` is not callable")));
    }
    let args = args
        .iter()
        .map(|a| from_json(vm, a))
        .collect::<PyResult<Vec<_>>>()?;
    let kwargs = kwargs
        .iter()
        .map(|(k, v)| Ok((k.clone(), from_json(vm, v)?)))
        .collect::<PyResult<KwArgs>>()?;
    target.call(FuncArgs::new(args, kwargs), vm)
}

/// Forgets a finished (or never started) run of script `name`, unless a newer run took the name.
fn finish(node: &NodeSlot, name: &str, entry: &ScriptEntry) {
    let mut scripts = node.scripts.lock().unwrap();
    if scripts.get(name).is_some_and(|e| e.id == entry.id) {
        scripts.remove(name);
    }
    drop(scripts);
    entry.done.send_replace(true);
}

fn start_script(
    vm: &VirtualMachine,
    node: &Arc<NodeSlot>,
    name: String,
    source: &str,
    file: String,
    entry: Arc<ScriptEntry>,
) -> Result<(), ErrorInfo> {
    let prepared = compile(vm, source, Mode::Exec, &file).and_then(|code| {
        let globals = vm.ctx.new_dict();
        globals.set_item("__name__", vm.ctx.new_str("__main__").into(), vm)?;
        globals.set_item("__file__", vm.ctx.new_str(file.as_str()).into(), vm)?;
        Ok((code, Scope::with_builtins(None, globals, vm)))
    });
    let (code, scope) = match prepared {
        Ok(ready) => ready,
        Err(exc) => {
            finish(node, &name, &entry);
            return Err(error_info(vm, &exc));
        }
    };
    let thread_vm = vm.new_thread();
    let node = node.clone();
    let thread_name = format!("script-{name}");
    let spawned = std::thread::Builder::new()
        .name(thread_name)
        .stack_size(16 * 1024 * 1024)
        .spawn(move || {
            let host = node.host.clone();
            let source_tag = format!("script:{name}");
            native::set_host(host.clone());
            OUTPUT.with(|o| {
                *o.borrow_mut() = Some(Output::Log {
                    source: source_tag.clone(),
                    pending: String::new(),
                })
            });
            STOP.with(|s| *s.borrow_mut() = Some(entry.stop.clone()));
            thread_vm.run(|vm| {
                host.log(&source_tag, "info", "started");
                let globals = scope.globals.clone();
                let bridge = || vm.import("_plastic_node", 0);
                let begun = bridge().and_then(|b| b.get_attr("begin_script", vm)?.call((), vm));
                let result = begun
                    .and_then(|_| vm.run_code_obj(code, scope))
                    .and_then(|_| {
                        // `async def main()` without a call: run it, as the agent does.
                        bridge()?.get_attr("drive_main", vm)?.call((globals,), vm)
                    });
                native::flush_log(&*host);
                match result {
                    Ok(_) => host.log(&source_tag, "info", "finished"),
                    Err(exc) if exc.class().name().to_string() == "ScriptStopped" => {
                        host.log(&source_tag, "info", "stopped")
                    }
                    Err(exc) => {
                        let info = error_info(vm, &exc);
                        host.log(
                            &source_tag,
                            "error",
                            &format!("crashed:\n{}", info.traceback.trim_end()),
                        );
                    }
                }
            });
            finish(&node, &name, &entry);
        });
    spawned.map(|_| ()).map_err(|e| {
        ErrorInfo::new(
            "OSError",
            format!("could not start a thread for the script: {e}"),
        )
    })
}
