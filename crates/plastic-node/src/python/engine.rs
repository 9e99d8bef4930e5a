//! The engine thread, its jobs and the supervised scripts.
//!
//! An [`Interpreter`] handle owns one engine thread (started lazily); a [`PythonEngine`] is one
//! node's view of it: its namespace, its scripts, its host. A real node has an interpreter of
//! its own; `plastic sim` shares one among all its nodes, each with its own namespace, because
//! an interpreter costs about 2.5 MB and 6 ms to start and a simulated fleet has thousands.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use plastic_proto::command::AbortedWas;
use plastic_proto::ErrorInfo;
use rustpython_vm::builtins::PyCode;
use rustpython_vm::compiler::Mode;
use rustpython_vm::function::{FuncArgs, KwArgs};
use rustpython_vm::scope::Scope;
use rustpython_vm::signal::{user_signal_channel, UserSignalReceiver, UserSignalSender};
use rustpython_vm::{AsObject, PyObjectRef, PyRef, PyResult, Settings, VirtualMachine};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::convert::{error_info, from_json, to_json};
use super::host::Host;
use super::native::{self, Output, StopFlag, OUTPUT, STOP};
use super::nesting;

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
        /// `apply`: Python defining `name`, run first (compiled once, from the code cache).
        source: Option<String>,
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
    /// An eval/exec/function request's handle for `interrupt`.
    ticket: Option<Arc<Ticket>>,
}

/// A queued or running eval/exec/function request, as `interrupt` finds it.
struct Ticket {
    /// Numbers the job, so an interrupt meant for it never hits a later one.
    seq: u64,
    /// The request's `message_id`, when it had one.
    id: Option<String>,
    /// Set by `interrupt`: wakes `time.sleep`, and a job that has not started yet never runs.
    flag: Arc<StopFlag>,
    /// Turns true when the job's outcome is in.
    done: tokio::sync::watch::Sender<bool>,
    /// [`QUEUED`], then [`RUNNING`] when the engine thread takes the job, or [`ABORTED`] when
    /// an `abort` got there first: one compare-and-swap decides, so a job never both runs and
    /// answers `Aborted`.
    state: AtomicU8,
    /// Woken by a successful abort, so the waiting request answers at once, not when the
    /// engine thread reaches the dropped job.
    aborted: tokio::sync::Notify,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const ABORTED: u8 = 2;

impl Ticket {
    /// The engine thread's claim on the job; false when it was aborted first.
    fn start(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// An abort's claim on the job; false when it already started.
    fn abort(&self) -> bool {
        let won = self
            .state
            .compare_exchange(QUEUED, ABORTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            self.aborted.notify_one();
        }
        won
    }
}

/// Takes a finished request off its node's list, even when its caller stopped waiting.
struct TicketGuard<'a> {
    node: &'a NodeSlot,
    ticket: Arc<Ticket>,
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        self.node
            .requests
            .lock()
            .unwrap()
            .retain(|t| t.seq != self.ticket.seq);
        self.ticket.done.send_replace(true);
    }
}

/// A node as the engine thread sees it.
struct NodeSlot {
    id: u64,
    host: Arc<dyn Host>,
    root: PathBuf,
    scripts: Mutex<BTreeMap<String, Arc<ScriptEntry>>>,
    /// Its eval/exec/function requests queued or running on the engine thread.
    requests: Mutex<Vec<Arc<Ticket>>>,
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

/// How long `interrupt` waits for an interrupted request to end before it answers anyway.
const INTERRUPT_WAIT: Duration = Duration::from_secs(1);
/// How often it asks again meanwhile: the VM's pending-signal flag is one per process, so
/// another interpreter in the process (tests) may have consumed the first knock.
const INTERRUPT_REPEAT: Duration = Duration::from_millis(50);

thread_local! {
    /// The sequence number of the job the engine thread runs now (0: none).
    static CURRENT_JOB: Cell<u64> = const { Cell::new(0) };
}

/// One RustPython interpreter on its own thread, started on first use.
#[derive(Default)]
pub struct Interpreter {
    jobs: OnceLock<mpsc::Sender<Job>>,
    /// RustPython's hook for asynchronous exceptions: a closure sent here runs on the engine
    /// thread at its next bytecode instruction (the VM checks a pending-signal flag between
    /// instructions anyway), which is how `interrupt` reaches a loop that calls nothing.
    signals: OnceLock<UserSignalSender>,
}

impl Interpreter {
    pub fn new() -> Arc<Self> {
        Arc::new(Interpreter::default())
    }

    fn jobs(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            let (signals, signals_rx) = user_signal_channel();
            let _ = self.signals.set(signals);
            std::thread::Builder::new()
                .name("python".into())
                .stack_size(nesting::THREAD_STACK)
                .spawn(move || engine_thread(rx, signals_rx))
                .expect("spawning the Python engine thread");
            tx
        })
    }

    /// Raises `KeyboardInterrupt` on the engine thread if it still runs job `seq`.
    fn knock(&self, seq: u64) {
        let Some(signals) = self.signals.get() else {
            return;
        };
        let _ = signals.send(Box::new(move |vm: &VirtualMachine| {
            if CURRENT_JOB.with(Cell::get) == seq {
                return Err(vm.new_exception_msg(
                    vm.ctx.exceptions.keyboard_interrupt.to_owned(),
                    "interrupted by request".into(),
                ));
            }
            Ok(())
        }));
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

/// A Python request: what `eval`, `exec` and `function` messages ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum PyRequest {
    Eval(String),
    Exec(String),
    Call {
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    },
    /// Runs `source` (which defines `name`), then calls `name`.
    Apply {
        source: String,
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    },
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
            requests: Mutex::default(),
            deploying: tokio::sync::Mutex::new(()),
        });
        PythonEngine { interpreter, node }
    }

    /// Runs a Python request: `id` is its `message_id` (what `interrupt` names), `deadline`
    /// (Unix seconds) makes it `Expired` instead if it has passed when the job's turn comes.
    pub async fn request(
        &self,
        request: PyRequest,
        id: Option<String>,
        deadline: Option<f64>,
    ) -> Outcome {
        let (tx, rx) = oneshot::channel();
        let work = match request {
            PyRequest::Eval(code) => Work::Eval(code, tx),
            PyRequest::Exec(code) => Work::Exec(code, tx),
            PyRequest::Call { name, args, kwargs } => Work::Call {
                source: None,
                name,
                args,
                kwargs,
                reply: tx,
            },
            PyRequest::Apply {
                source,
                name,
                args,
                kwargs,
            } => Work::Call {
                source: Some(source),
                name,
                args,
                kwargs,
                reply: tx,
            },
        };
        let ticket = Arc::new(Ticket {
            seq: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            id,
            flag: Arc::default(),
            done: tokio::sync::watch::channel(false).0,
            state: AtomicU8::new(QUEUED),
            aborted: tokio::sync::Notify::new(),
        });
        self.node.requests.lock().unwrap().push(ticket.clone());
        let _guard = TicketGuard {
            node: &self.node,
            ticket: ticket.clone(),
        };
        if !self.interpreter.send(Job {
            node: self.node.clone(),
            work,
            deadline,
            ticket: Some(ticket.clone()),
        }) {
            return Outcome::engine_gone();
        }
        tokio::select! {
            outcome = rx => outcome.unwrap_or_else(|_| Outcome::engine_gone()),
            () = ticket.aborted.notified() => Outcome::error(aborted_before_start()),
        }
    }

    /// Evaluates `code` (a request without a message id; see [`PythonEngine::request`]).
    pub async fn eval(&self, code: String, deadline: Option<f64>) -> Outcome {
        self.request(PyRequest::Eval(code), None, deadline).await
    }

    pub async fn exec(&self, code: String, deadline: Option<f64>) -> Outcome {
        self.request(PyRequest::Exec(code), None, deadline).await
    }

    pub async fn call(
        &self,
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        deadline: Option<f64>,
    ) -> Outcome {
        self.request(PyRequest::Call { name, args, kwargs }, None, deadline)
            .await
    }

    /// Raises `KeyboardInterrupt` in this node's running eval/exec/function request and makes
    /// its queued ones end the same way without running; with `id`, only in the request with
    /// that message id. Waits up to [`INTERRUPT_WAIT`] for them to end. Returns the message
    /// ids reached, sorted.
    pub async fn interrupt(&self, id: Option<&str>) -> Vec<String> {
        let hit: Vec<Arc<Ticket>> = self
            .node
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|t| id.is_none_or(|want| t.id.as_deref() == Some(want)))
            .cloned()
            .collect();
        for ticket in &hit {
            // The knock first, then the flag: the flag wakes a `time.sleep`, whose next
            // instruction must find the knock already there.
            self.interpreter.knock(ticket.seq);
            ticket.flag.stop();
        }
        let deadline = tokio::time::Instant::now() + INTERRUPT_WAIT;
        for ticket in &hit {
            let mut done = ticket.done.subscribe();
            while tokio::time::Instant::now() < deadline {
                let slice = INTERRUPT_REPEAT.min(deadline - tokio::time::Instant::now());
                if tokio::time::timeout(slice, done.wait_for(|d| *d))
                    .await
                    .is_ok()
                {
                    break;
                }
                self.interpreter.knock(ticket.seq);
            }
        }
        let mut ids: Vec<String> = hit.iter().filter_map(|t| t.id.clone()).collect();
        ids.sort();
        ids
    }

    /// `abort` of the request whose message id is `id`, if it is this node's Python work: one
    /// waiting for its turn is dropped (it answers `Aborted` now and never runs), one running
    /// is interrupted as by [`PythonEngine::interrupt`]. `None`: no such request here.
    pub async fn abort(&self, id: &str) -> Option<AbortedWas> {
        let ticket = self
            .node
            .requests
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.id.as_deref() == Some(id))
            .cloned()?;
        if ticket.abort() || ticket.state.load(Ordering::Acquire) == ABORTED {
            return Some(AbortedWas::Waiting);
        }
        self.interrupt(Some(id)).await;
        Some(AbortedWas::Running)
    }

    /// Tells Python that the module file `module` changed, so the next `import` reads it anew.
    pub fn forget_module(&self, module: &str) {
        self.interpreter.send_if_started(Job {
            node: self.node.clone(),
            work: Work::Forget(module.to_owned()),
            deadline: None,
            ticket: None,
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
            ticket: None,
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
            ticket: None,
        });
    }
}

fn new_interpreter(signals: UserSignalReceiver) -> rustpython_vm::Interpreter {
    let mut settings = Settings::default();
    // The node owns SIGINT (graceful shutdown), not Python.
    settings.install_signal_handlers = false;
    // Path-based imports (`import functions` after an upload) need importlib's external finder.
    settings.allow_external_library = true;
    let builder = rustpython_vm::Interpreter::builder(settings);
    let defs = rustpython_stdlib::stdlib_module_defs(&builder.ctx);
    builder
        .add_native_modules(&defs)
        // The pure-Python half of the standard library (os, re, collections, datetime, json...),
        // compiled to bytecode at build time: a Linux node runs the Python its users know.
        .add_frozen_modules(rustpython_pylib::FROZEN_STDLIB)
        .init_hook(move |vm| vm.set_user_signal_channel(signals))
        .build()
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

fn engine_thread(jobs: mpsc::Receiver<Job>, signals: UserSignalReceiver) {
    native::ON_ENGINE_THREAD.with(|t| t.set(true));
    let interp = new_interpreter(signals);
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
        for Job {
            node,
            work,
            deadline,
            ticket,
        } in jobs
        {
            if ticket.as_ref().is_some_and(|t| !t.start()) {
                fail(work, &aborted_before_start());
                continue;
            }
            if ticket.as_ref().is_some_and(|t| t.flag.is_stopped()) {
                fail(work, &interrupted_before_start());
                continue;
            }
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
            // While the job runs, an interrupt may knock (see `Interpreter::knock`) and its
            // flag is what `time.sleep` waits on.
            let _current = ticket.as_ref().map(|t| CurrentJob::enter(t));
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
                    source,
                    name,
                    args,
                    kwargs,
                    reply,
                } => {
                    let _ = reply.send(capture(vm, || {
                        if let Some(source) = source {
                            // The source must define it: an older definition does not count.
                            let _ = scope.globals.del_item(name.as_str(), vm);
                            state.run_source(vm, &scope, source, Mode::Exec)?;
                            if scope.globals.get_item_opt(name.as_str(), vm)?.is_none() {
                                let message = format!("the source does not define `{name}`");
                                return Err(vm.new_name_error(message, vm.ctx.new_str(name.as_str())));
                            }
                        }
                        call(vm, &scope, &name, &args, &kwargs)
                    }));
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
            // A knock that came too late for its job waits in the VM's queue: take it now,
            // so the pending-signal flag does not stay raised for every thread.
            drop(_current);
            let _ = vm.check_signals();
        }
    });
}

/// The engine thread's current request, for the length of one job.
struct CurrentJob;

impl CurrentJob {
    fn enter(ticket: &Ticket) -> Self {
        CURRENT_JOB.with(|c| c.set(ticket.seq));
        STOP.with(|s| *s.borrow_mut() = Some(ticket.flag.clone()));
        CurrentJob
    }
}

impl Drop for CurrentJob {
    fn drop(&mut self) {
        CURRENT_JOB.with(|c| c.set(0));
        STOP.with(|s| *s.borrow_mut() = None);
    }
}

fn aborted_before_start() -> ErrorInfo {
    ErrorInfo::new(
        "Aborted",
        "aborted by request while it waited for its turn; it was not run",
    )
}

fn interrupted_before_start() -> ErrorInfo {
    ErrorInfo::new(
        "KeyboardInterrupt",
        "interrupted by request before it started; it was not run",
    )
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
    // An interrupted request's `time.sleep`, `machine` or `plastic` call raises the script
    // stop exception; for a request it is the interrupt.
    let result = result.map_err(|mut e| {
        let interrupted = STOP.with(|s| s.borrow().as_ref().is_some_and(|f| f.is_stopped()));
        if interrupted && e.kind == "ScriptStopped" {
            e.kind = "KeyboardInterrupt".into();
            e.message = "interrupted by request".into();
        }
        e
    });
    Outcome { result, stdout }
}

fn compile(vm: &VirtualMachine, source: &str, mode: Mode, file: &str) -> PyResult<PyRef<PyCode>> {
    nesting::check(vm, source)?;
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
        .stack_size(nesting::THREAD_STACK)
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
