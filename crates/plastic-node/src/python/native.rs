//! `_plastic_node`: the native bridge between `prelude.py` and the node.
//!
//! Output and stop requests are per thread: a request job on the engine thread captures what it
//! prints into its reply; a script thread sends its lines to the log topic and carries its own
//! stop flag. Thread-locals hold that, since every Python thread here is one we started.

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustpython_vm::builtins::{PyModule, PyStrRef};
use rustpython_vm::function::{ArgIntoFloat, FuncArgs};
use rustpython_vm::{PyObjectRef, PyRef, PyResult, VirtualMachine};

use super::convert::{from_json, to_json_strict};
use super::host::Host;

/// Most output a single request keeps for its reply; past that it is cut with a note.
pub(crate) const MAX_CAPTURE: usize = 64 * 1024;
/// A script's unfinished output line is sent anyway once it is this long.
const MAX_PENDING_LINE: usize = 4 * 1024;

/// A script's stop request, waitable so that `time.sleep` wakes at once.
#[derive(Default)]
pub(crate) struct StopFlag {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl StopFlag {
    pub(crate) fn stop(&self) {
        *self.stopped.lock().unwrap() = true;
        self.wake.notify_all();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        *self.stopped.lock().unwrap()
    }

    /// Sleeps up to `d`; true if stopped meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap();
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap();
        *guard
    }
}

pub(crate) enum Output {
    /// A request: printed text goes into its reply.
    Capture(String),
    /// A script: complete lines go to the log topic under `source`.
    Log { source: String, pending: String },
}

thread_local! {
    pub(crate) static OUTPUT: RefCell<Option<Output>> = const { RefCell::new(None) };
    pub(crate) static STOP: RefCell<Option<Arc<StopFlag>>> = const { RefCell::new(None) };
    /// The node whose code this thread runs now. One interpreter may serve many simulated
    /// nodes, so the bridge looks its node up per call instead of capturing it.
    pub(crate) static HOST: RefCell<Option<Arc<dyn Host>>> = const { RefCell::new(None) };
    /// True on the engine thread, where eval/exec/function run one at a time.
    pub(crate) static ON_ENGINE_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn set_host(host: Arc<dyn Host>) {
    HOST.with(|h| *h.borrow_mut() = Some(host));
}

fn host(vm: &VirtualMachine) -> PyResult<Arc<dyn Host>> {
    HOST.with(|h| h.borrow().clone())
        .ok_or_else(|| vm.new_runtime_error("this thread does not belong to a plastic node"))
}

/// Takes the captured text of the current request.
pub(crate) fn take_capture() -> String {
    OUTPUT.with(|o| match o.borrow_mut().take() {
        Some(Output::Capture(s)) => s,
        _ => String::new(),
    })
}

/// Sends a script's unfinished last line, if any.
pub(crate) fn flush_log(host: &dyn Host) {
    OUTPUT.with(|o| {
        if let Some(Output::Log { source, pending }) = &mut *o.borrow_mut() {
            if !pending.is_empty() {
                host.log(source, "info", &std::mem::take(pending));
            }
        }
    })
}

fn write(host: &dyn Host, text: &str) {
    OUTPUT.with(|o| match &mut *o.borrow_mut() {
        Some(Output::Capture(buf)) => {
            if buf.len() < MAX_CAPTURE {
                let room = MAX_CAPTURE - buf.len();
                let mut cut = text.len().min(room);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                buf.push_str(&text[..cut]);
                if cut < text.len() {
                    buf.push_str("\n[output truncated at 64 KiB]\n");
                }
            }
        }
        Some(Output::Log { source, pending }) => {
            pending.push_str(text);
            while let Some(nl) = pending.find('\n') {
                let line: String = pending.drain(..=nl).collect();
                host.log(source, "info", line.trim_end_matches('\n'));
            }
            // Output that never ends a line (`print('.', end='')` in a loop) goes out in pieces.
            if pending.len() >= MAX_PENDING_LINE {
                host.log(source, "info", &std::mem::take(pending));
            }
        }
        None => host.log("python", "info", text.trim_end_matches('\n')),
    })
}

fn current_stop() -> Option<Arc<StopFlag>> {
    STOP.with(|s| s.borrow().clone())
}

fn str_arg(s: &PyStrRef, vm: &VirtualMachine) -> PyResult<String> {
    s.to_str()
        .map(str::to_owned)
        .ok_or_else(|| vm.new_value_error("string is not valid UTF-8"))
}

fn pin_number(id: i64, vm: &VirtualMachine) -> PyResult<u32> {
    u32::try_from(id).map_err(|_| vm.new_value_error(format!("invalid pin {id}")))
}

pub(crate) fn make_module(vm: &VirtualMachine) -> PyResult<PyRef<PyModule>> {
    let module = vm.new_module("_plastic_node", vm.ctx.new_dict(), None);
    let started = Instant::now();

    macro_rules! def {
        ($name:literal, $f:expr) => {
            module.set_attr($name, vm.new_function($name, $f), vm)?;
        };
    }

    def!("name", move |vm: &VirtualMachine| -> PyResult<String> {
        Ok(host(vm)?.node_name().to_owned())
    });
    def!("check", move || -> bool {
        current_stop().is_some_and(|s| s.is_stopped())
    });
    // A script's trace function (sys.settrace), called on every line it runs: how `stop`
    // reaches a loop that never calls sleep, machine or plastic. RustPython cannot interrupt
    // a thread from outside, and scripts run on threads of their own. Native, so a line costs
    // one Rust call rather than a Python frame.
    def!("stop_tracer", move |_frame: PyObjectRef,
                              _event: PyObjectRef,
                              _arg: PyObjectRef,
                              vm: &VirtualMachine|
          -> PyResult<PyObjectRef> {
        if current_stop().is_some_and(|s| s.is_stopped()) {
            let class = vm
                .import("_plastic_node", 0)?
                .get_attr("ScriptStopped", vm)?
                .downcast::<rustpython_vm::builtins::PyType>()
                .map_err(|_| vm.new_runtime_error("ScriptStopped is not a class"))?;
            return Err(vm.new_exception_empty(class));
        }
        // Keep tracing the frame: its local trace function is this one again.
        Ok(vm.trace_func.borrow().clone())
    });
    def!("sleep", move |seconds: ArgIntoFloat,
                        vm: &VirtualMachine|
          -> PyResult<bool> {
        let seconds = seconds.into_float();
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(vm.new_value_error("sleep length must be a non-negative number"));
        }
        let d = Duration::from_secs_f64(seconds.min(1e9));
        Ok(match current_stop() {
            Some(flag) => flag.sleep(d),
            None => {
                std::thread::sleep(d);
                false
            }
        })
    });
    def!("ticks_ms", move || -> u64 {
        (started.elapsed().as_millis() as u64) & ((1 << 30) - 1)
    });
    def!("write", move |text: PyStrRef,
                        vm: &VirtualMachine|
          -> PyResult<()> {
        write(&*host(vm)?, text.as_ref());
        Ok(())
    });
    def!("pin_read", move |id: i64,
                           vm: &VirtualMachine|
          -> PyResult<u8> {
        host(vm)?
            .gpio()
            .read(pin_number(id, vm)?)
            .map_err(|e| vm.new_value_error(e.to_string()))
    });
    def!("pin_write", move |id: i64,
                            value: i64,
                            vm: &VirtualMachine|
          -> PyResult<()> {
        let value =
            u8::try_from(value).map_err(|_| vm.new_value_error("pin value must be 0 or 1"))?;
        host(vm)?
            .gpio()
            .write(pin_number(id, vm)?, value)
            .map_err(|e| vm.new_value_error(e.to_string()))
    });
    def!(
        "unique_id",
        move |vm: &VirtualMachine| -> PyResult<PyObjectRef> {
            Ok(vm.ctx.new_bytes(host(vm)?.unique_id()).into())
        }
    );
    def!("reset", move |vm: &VirtualMachine| -> PyResult<()> {
        host(vm)?.reset();
        Ok(())
    });
    def!("send", move |to: PyStrRef,
                       msg: PyObjectRef,
                       vm: &VirtualMachine|
          -> PyResult<String> {
        let msg = message_arg(vm, &msg)?;
        host(vm)?
            .send(&str_arg(&to, vm)?, msg)
            .map_err(|e| vm.new_runtime_error(e))
    });
    def!("request", move |to: PyStrRef,
                          msg: PyObjectRef,
                          timeout: ArgIntoFloat,
                          vm: &VirtualMachine|
          -> PyResult {
        let msg = message_arg(vm, &msg)?;
        let timeout = timeout.into_float();
        if !timeout.is_finite() || timeout <= 0.0 {
            return Err(vm.new_value_error("timeout must be a positive number of seconds"));
        }
        let to = str_arg(&to, vm)?;
        let host = host(vm)?;
        if ON_ENGINE_THREAD.with(|t| t.get()) && host.shares_engine_with(&to) {
            // The answer would have to run on this very thread, which is busy waiting for it.
            return Err(vm.new_runtime_error(format!(
                "a request from eval/exec/function to {to} would wait for itself: {to} runs its \
                 Python on this same engine; use plastic.send, or request from a script"
            )));
        }
        // Blocks this Python thread only; the node's message loop keeps running.
        let reply = host.request(&to, msg, Duration::from_secs_f64(timeout.min(86_400.0)));
        Ok(match reply {
            Ok(value) => vm.new_tuple((true, from_json(vm, &value)?)).into(),
            Err(e) => {
                let err = vm.new_tuple((e.kind, e.message, e.traceback));
                vm.new_tuple((false, err)).into()
            }
        })
    });
    def!("publish", move |topic: PyStrRef,
                          data: PyObjectRef,
                          vm: &VirtualMachine|
          -> PyResult<()> {
        let data = to_json_strict(vm, &data)?;
        host(vm)?
            .publish_event(&str_arg(&topic, vm)?, data)
            .map_err(|e| vm.new_value_error(e))
    });
    def!("json_dumps", move |obj: PyObjectRef,
                             vm: &VirtualMachine|
          -> PyResult<String> {
        Ok(to_json_strict(vm, &obj)?.to_string())
    });
    def!("json_loads", move |text: PyObjectRef,
                             vm: &VirtualMachine|
          -> PyResult {
        let text = if let Some(s) = text.downcast_ref::<rustpython_vm::builtins::PyStr>() {
            s.to_string()
        } else if let Some(b) = text.downcast_ref::<rustpython_vm::builtins::PyBytes>() {
            String::from_utf8(b.as_bytes().to_vec())
                .map_err(|_| vm.new_value_error("JSON bytes are not UTF-8"))?
        } else {
            return Err(vm.new_type_error("json.loads takes str or bytes"));
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            // serde_json stops at 128 levels rather than overflow; CPython says RecursionError.
            if e.to_string().starts_with("recursion limit exceeded") {
                vm.new_recursion_error(format!("JSON nested too deeply: {e}"))
            } else {
                vm.new_value_error(format!("invalid JSON: {e}"))
            }
        })?;
        from_json(vm, &value)
    });
    // Python's own `compile`, `eval` and `exec` (and so imports, which compile through
    // `compile`) check nesting first too; the prelude puts these in `builtins`. Native, so the
    // original builtins still see the caller's frame (an `eval` without globals uses it).
    for name in ["compile", "eval", "exec"] {
        let guarded = vm.new_function(
            name,
            move |args: FuncArgs, vm: &VirtualMachine| -> PyResult {
                if let Some(source) = args.args.first() {
                    check_source_nesting(vm, source)?;
                }
                let original = vm
                    .import("_plastic_node", 0)?
                    .get_attr(&*vm.ctx.new_str(format!("_builtin_{name}")), vm)?;
                original.call(args, vm)
            },
        );
        module.set_attr(&*vm.ctx.new_str(format!("guarded_{name}")), guarded, vm)?;
    }
    Ok(module)
}

/// The nesting check (python/nesting.rs) for source given as str or bytes; anything else (a
/// code object, an AST) is the original builtin's business.
fn check_source_nesting(vm: &VirtualMachine, source: &PyObjectRef) -> PyResult<()> {
    if let Some(s) = source.downcast_ref::<rustpython_vm::builtins::PyStr>() {
        // Lone surrogates (not UTF-8) go through a lossy copy; the compiler refuses them anyway.
        return match s.to_str() {
            Some(text) => super::nesting::check(vm, text),
            None => super::nesting::check(vm, &s.to_string_lossy()),
        };
    }
    if let Some(b) = source.downcast_ref::<rustpython_vm::builtins::PyBytes>() {
        return super::nesting::check(vm, &String::from_utf8_lossy(b.as_bytes()));
    }
    Ok(())
}

fn message_arg(
    vm: &VirtualMachine,
    msg: &PyObjectRef,
) -> PyResult<serde_json::Map<String, serde_json::Value>> {
    match to_json_strict(vm, msg)? {
        serde_json::Value::Object(m) => Ok(m),
        _ => Err(vm.new_type_error("a message must be a dict")),
    }
}
