//! The node's Python engine: RustPython on a thread of its own.
//!
//! RustPython's VM is not `Send`, so one OS thread per node owns the interpreter and runs
//! `eval`, `exec` and `function` jobs in order, against one persistent namespace (as an IPython
//! engine does). The message loop only queues jobs and awaits their outcome, so a long `exec`
//! never delays a `ping`. Deployed scripts run on threads of their own that share the
//! interpreter (RustPython's `threading` feature) but not the request namespace.
//!
//! The interpreter is created on the first Python request, so a simulated fleet of thousands of
//! nodes costs nothing until someone sends them Python.
//!
//! Stopping a script is cooperative: RustPython delivers asynchronous signals only to its main
//! thread, so a stop request sets a flag that the script sees at its next call into `time`,
//! `machine` or `plastic` (see `prelude.py`), and that a native line tracer (`sys.settrace`)
//! checks on every line, so a loop that calls none of them stops too.
//!
//! Modules: [`Host`] (what Python reaches of the node) is used by both the engine thread and
//! the native `_plastic_node` bridge, which do not use each other the other way round: the
//! engine installs the bridge.

mod convert;
mod engine;
mod host;
mod native;
mod nesting;

pub use engine::{Interpreter, Outcome, PyRequest, PythonEngine};
pub use host::Host;
