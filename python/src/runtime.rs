//! The module's tokio runtime: one per process, two worker threads (the machines this runs on
//! are small; a client needs little). Blocking calls drive their future on the calling thread
//! with `block_on` (as `#[tokio::main]` does for the CLI), so a blocking request costs the
//! same thread hops as in the Rust client.

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("plastic-rt")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// How often a blocking call looks for Ctrl-C (KeyboardInterrupt) while it waits.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `future` to completion on the calling thread with the GIL released, checking for
/// signals (Ctrl-C in a terminal, "interrupt kernel" in Jupyter) every 100 ms; a signal drops
/// the future and raises. Refuses to run on one of the runtime's own threads, where blocking
/// would deadlock.
pub fn block_on<F>(py: Python<'_>, future: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(PyRuntimeError::new_err(
            "a blocking plastic call cannot run inside plastic's own callbacks; use block=False",
        ));
    }
    let rt = runtime();
    py.detach(|| {
        let mut future = pin!(future);
        loop {
            // The timer is made inside the runtime's context (`timeout` needs its clock).
            let slice =
                rt.block_on(async { tokio::time::timeout(SIGNAL_CHECK, &mut future).await });
            match slice {
                Ok(output) => return Ok(output),
                Err(_) => Python::attach(|py| py.check_signals())?,
            }
        }
    })
}
