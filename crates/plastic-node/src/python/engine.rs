//! The engine thread, its jobs and the supervised scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use plastic_proto::ErrorInfo;
use rustpython_vm::builtins::PyCode;
use rustpython_vm::compiler::Mode;
use rustpython_vm::function::{FuncArgs, KwArgs};
use rustpython_vm::scope::Scope;
use rustpython_vm::{
    AsObject, Interpreter, PyObjectRef, PyRef, PyResult, Settings, VirtualMachine,
};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::convert::{error_info, from_json, to_json};
use super::native::{self, Output, StopFlag, OUTPUT, STOP};
use crate::gpio::Gpio;

/// What Python on a node can reach of the node. Implemented by the node runtime; every method
/// may be called from any Python thread.
pub trait Host: Send + Sync + 'static {
    fn node_name(&self) -> &str;
    fn gpio(&self) -> &dyn Gpio;
    fn unique_id(&self) -> Vec<u8>;
    fn send(&self, to: &str, msg: Map<String, Value>) -> Result<(), String>;
    /// Blocks the calling (Python) thread until the reply's result, an error reply or timeout.
    fn request(
        &self,
        to: &str,
        msg: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, ErrorInfo>;
    fn publish_event(&self, topic: &str, data: Value) -> Result<(), String>;
    /// A line for the log topic. `source` is `script:<name>`, `node` or `python`.
    fn log(&self, source: &str, level: &str, text: &str);
    fn reset(&self);
}

/// The outcome of one Python request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The value (and whether it is a `repr` fallback), or the exception.
    pub result: Result<(Value, bool), ErrorInfo>,
    pub stdout: String,
}

impl Outcome {
    fn engine_gone() -> Self {
        Outcome {
            result: Err(ErrorInfo::new(
                "EngineError",
                "the Python engine has stopped",
            )),
            stdout: String::new(),
        }
    }
}

enum Job {
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
}

struct ScriptEntry {
    id: u64,
    stop: Arc<StopFlag>,
    done: Mutex<Option<oneshot::Receiver<()>>>,
    done_tx: Mutex<Option<oneshot::Sender<()>>>,
}

/// How long `stop` waits for a script to reach a stop point before reporting it still running.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// A handle to a node's Python engine. The thread and interpreter start on first use.
pub struct PythonEngine {
    host: Arc<dyn Host>,
    root: PathBuf,
    jobs: OnceLock<mpsc::Sender<Job>>,
    scripts: Arc<Mutex<BTreeMap<String, Arc<ScriptEntry>>>>,
    next_script_id: AtomicU64,
}

impl PythonEngine {
    pub fn new(host: Arc<dyn Host>, root: PathBuf) -> Self {
        PythonEngine {
            host,
            root,
            jobs: OnceLock::new(),
            scripts: Arc::default(),
            next_script_id: AtomicU64::new(1),
        }
    }

    fn jobs(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let host = self.host.clone();
            let root = self.root.clone();
            let scripts = self.scripts.clone();
            let name = format!("py-{}", host.node_name());
            std::thread::Builder::new()
                .name(name)
                .stack_size(16 * 1024 * 1024)
                .spawn(move || engine_thread(host, root, scripts, rx))
                .expect("spawning the Python engine thread");
            tx
        })
    }

    async fn run(&self, make: impl FnOnce(oneshot::Sender<Outcome>) -> Job) -> Outcome {
        let (tx, rx) = oneshot::channel();
        if self.jobs().send(make(tx)).is_err() {
            return Outcome::engine_gone();
        }
        rx.await.unwrap_or_else(|_| Outcome::engine_gone())
    }

    pub async fn eval(&self, code: String) -> Outcome {
        self.run(|tx| Job::Eval(code, tx)).await
    }

    pub async fn exec(&self, code: String) -> Outcome {
        self.run(|tx| Job::Exec(code, tx)).await
    }

    pub async fn call(
        &self,
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Outcome {
        self.run(|reply| Job::Call {
            name,
            args,
            kwargs,
            reply,
        })
        .await
    }

    /// Starts `source` as the script `name`, first stopping a running script of that name.
    /// Returns once the script compiled and its thread started.
    pub async fn start_script(
        &self,
        name: &str,
        source: String,
        file: String,
    ) -> Result<(), ErrorInfo> {
        let still_running = self.stop_scripts(Some(name)).await.1;
        if !still_running.is_empty() {
            return Err(ErrorInfo::new(
                "ScriptBusy",
                format!("script `{name}` did not stop within {STOP_GRACE:?}; it never calls time.sleep, machine or plastic"),
            ));
        }
        let (done_tx, done_rx) = oneshot::channel();
        let entry = Arc::new(ScriptEntry {
            id: self.next_script_id.fetch_add(1, Ordering::Relaxed),
            stop: Arc::default(),
            done: Mutex::new(Some(done_rx)),
            done_tx: Mutex::new(Some(done_tx)),
        });
        self.scripts
            .lock()
            .unwrap()
            .insert(name.to_owned(), entry.clone());
        let (started_tx, started_rx) = oneshot::channel();
        let job = Job::Script {
            name: name.to_owned(),
            source,
            file,
            entry,
            started: started_tx,
        };
        if self.jobs().send(job).is_err() {
            return Err(Outcome::engine_gone().result.unwrap_err());
        }
        started_rx
            .await
            .unwrap_or_else(|_| Err(Outcome::engine_gone().result.unwrap_err()))
    }

    /// Stops the named script, or all. Returns (stopped, still running after the grace time).
    pub async fn stop_scripts(&self, name: Option<&str>) -> (Vec<String>, Vec<String>) {
        let targets: Vec<(String, Arc<ScriptEntry>)> = {
            let scripts = self.scripts.lock().unwrap();
            scripts
                .iter()
                .filter(|(n, _)| name.is_none_or(|want| want == n.as_str()))
                .map(|(n, e)| (n.clone(), e.clone()))
                .collect()
        };
        let (mut stopped, mut running) = (Vec::new(), Vec::new());
        for (n, entry) in targets {
            entry.stop.stop();
            let done = entry.done.lock().unwrap().take();
            let ended = match done {
                Some(rx) => tokio::time::timeout(STOP_GRACE, rx).await.is_ok(),
                None => true,
            };
            if ended {
                stopped.push(n);
            } else {
                running.push(n);
            }
        }
        (stopped, running)
    }

    pub fn running_scripts(&self) -> Vec<String> {
        self.scripts.lock().unwrap().keys().cloned().collect()
    }

    /// Whether the interpreter was ever started (for `info`).
    pub fn is_started(&self) -> bool {
        self.jobs.get().is_some()
    }
}

fn interpreter() -> Interpreter {
    let mut settings = Settings::default();
    // The node owns SIGINT (graceful shutdown), not Python.
    settings.install_signal_handlers = false;
    // Path-based imports (`import functions` after an upload) need importlib's external finder.
    settings.allow_external_library = true;
    let builder = Interpreter::builder(settings);
    let defs = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    builder.add_native_modules(&defs).build()
}

fn init(vm: &VirtualMachine, host: &Arc<dyn Host>, root: &std::path::Path) -> PyResult<Scope> {
    let module = native::make_module(vm, host.clone())?;
    vm.sys_module
        .get_attr("modules", vm)?
        .set_item("_plastic_node", module.into(), vm)?;
    let sys_path = vm.sys_module.get_attr("path", vm)?;
    vm.call_method(
        &sys_path,
        "insert",
        (0, root.to_string_lossy().into_owned()),
    )?;
    let prelude = vm.new_scope_with_builtins();
    vm.run_string(
        prelude,
        include_str!("prelude.py"),
        "<plastic prelude>".to_owned(),
    )?;
    vm.new_scope_with_main()
}

fn engine_thread(
    host: Arc<dyn Host>,
    root: PathBuf,
    scripts: Arc<Mutex<BTreeMap<String, Arc<ScriptEntry>>>>,
    jobs: mpsc::Receiver<Job>,
) {
    let interp = interpreter();
    interp.enter(|vm| {
        let scope = match init(vm, &host, &root) {
            Ok(scope) => scope,
            Err(exc) => {
                let info = error_info(vm, &exc);
                tracing::error!(traceback = %info.traceback, "Python engine failed to start");
                for job in jobs {
                    fail(job, &info);
                }
                return;
            }
        };
        for job in jobs {
            match job {
                Job::Eval(code, reply) => {
                    let _ = reply.send(capture(vm, || {
                        run_source(vm, &scope, &code, Mode::Eval, "<eval>")
                    }));
                }
                Job::Exec(code, reply) => {
                    let _ = reply.send(capture(vm, || {
                        run_source(vm, &scope, &code, Mode::Exec, "<exec>").map(|_| vm.ctx.none())
                    }));
                }
                Job::Call {
                    name,
                    args,
                    kwargs,
                    reply,
                } => {
                    let _ = reply.send(capture(vm, || call(vm, &scope, &name, &args, &kwargs)));
                }
                Job::Script {
                    name,
                    source,
                    file,
                    entry,
                    started,
                } => {
                    let result = start_script(vm, &host, &scripts, name, &source, file, entry);
                    let _ = started.send(result);
                }
            }
        }
    });
}

fn fail(job: Job, info: &ErrorInfo) {
    let outcome = Outcome {
        result: Err(info.clone()),
        stdout: String::new(),
    };
    match job {
        Job::Eval(_, r) | Job::Exec(_, r) | Job::Call { reply: r, .. } => {
            let _ = r.send(outcome);
        }
        Job::Script { started, .. } => {
            let _ = started.send(Err(info.clone()));
        }
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

fn run_source(
    vm: &VirtualMachine,
    scope: &Scope,
    source: &str,
    mode: Mode,
    file: &str,
) -> PyResult {
    let code = compile(vm, source, mode, file)?;
    vm.run_code_obj(code, scope.clone())
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

fn start_script(
    vm: &VirtualMachine,
    host: &Arc<dyn Host>,
    scripts: &Arc<Mutex<BTreeMap<String, Arc<ScriptEntry>>>>,
    name: String,
    source: &str,
    file: String,
    entry: Arc<ScriptEntry>,
) -> Result<(), ErrorInfo> {
    let forget = |scripts: &Mutex<BTreeMap<String, Arc<ScriptEntry>>>, entry: &ScriptEntry| {
        let mut scripts = scripts.lock().unwrap();
        if scripts.get(&name).is_some_and(|e| e.id == entry.id) {
            scripts.remove(&name);
        }
        if let Some(tx) = entry.done_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
    };
    let code = match compile(vm, source, Mode::Exec, &file) {
        Ok(code) => code,
        Err(exc) => {
            forget(scripts, &entry);
            return Err(error_info(vm, &exc));
        }
    };
    let globals = vm.ctx.new_dict();
    let setup = globals
        .set_item("__name__", vm.ctx.new_str("__main__").into(), vm)
        .and_then(|_| globals.set_item("__file__", vm.ctx.new_str(file.as_str()).into(), vm));
    if let Err(exc) = setup {
        forget(scripts, &entry);
        return Err(error_info(vm, &exc));
    }
    let scope = Scope::with_builtins(None, globals, vm);
    let thread_vm = vm.new_thread();
    let host = host.clone();
    let scripts = scripts.clone();
    let script_name = name.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("script-{name}"))
        .stack_size(16 * 1024 * 1024)
        .spawn(move || {
            let source_tag = format!("script:{script_name}");
            OUTPUT.with(|o| {
                *o.borrow_mut() = Some(Output::Log {
                    source: source_tag.clone(),
                    pending: String::new(),
                })
            });
            STOP.with(|s| *s.borrow_mut() = Some(entry.stop.clone()));
            thread_vm.run(|vm| {
                host.log(&source_tag, "info", "started");
                let result = vm.run_code_obj(code, scope);
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
            // The name belongs to this run only if no newer script took it meanwhile.
            let mut map = scripts.lock().unwrap();
            if map.get(&script_name).is_some_and(|e| e.id == entry.id) {
                map.remove(&script_name);
            }
            drop(map);
            if let Some(tx) = entry.done_tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
        });
    if let Err(e) = spawned {
        return Err(ErrorInfo::new(
            "OSError",
            format!("could not start a thread for the script: {e}"),
        ));
    }
    Ok(())
}
