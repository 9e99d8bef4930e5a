//! A request running in the background: Python waits on it (GIL released), polls it, or is
//! called back when it ends (how `AsyncResult` becomes awaitable: the callback hands the
//! result to an asyncio loop with `call_soon_threadsafe`).

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use plastic_client::Client;
use pyo3::prelude::*;
use tokio::task::AbortHandle;

use crate::connection::{abort, Sent};
use crate::runtime::block_on;

#[derive(Default)]
struct State {
    /// The outcomes as JSON text, once finished.
    result: Option<String>,
    finished: Option<Instant>,
    callbacks: Vec<Py<PyAny>>,
    task: Option<AbortHandle>,
}

pub struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    started: Instant,
    client: Client,
    sent: Sent,
}

impl Shared {
    pub fn new(client: Client, sent: Sent) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::default(),
            cond: Condvar::new(),
            started: Instant::now(),
            client,
            sent,
        })
    }

    pub fn set_task(&self, task: AbortHandle) {
        let mut state = self.state.lock().unwrap();
        if state.result.is_none() {
            state.task = Some(task);
        }
    }

    /// Records the result (the first one wins), wakes waiters and runs the callbacks.
    pub fn finish(&self, result: String) {
        let callbacks = {
            let mut state = self.state.lock().unwrap();
            if state.result.is_some() {
                return;
            }
            state.result = Some(result);
            state.finished = Some(Instant::now());
            state.task = None;
            std::mem::take(&mut state.callbacks)
        };
        self.cond.notify_all();
        if !callbacks.is_empty() {
            Python::attach(|py| {
                for callback in callbacks {
                    if let Err(e) = callback.bind(py).call0() {
                        e.write_unraisable(py, None);
                    }
                }
            });
        }
    }
}

/// A running request. Its result is the JSON text `{"outcomes": [...], "error": ...}`.
#[pyclass(frozen, module = "plastic._plastic")]
pub struct Pending {
    pub shared: Arc<Shared>,
}

#[pymethods]
impl Pending {
    /// True once every node's outcome is in.
    fn done(&self) -> bool {
        self.shared.state.lock().unwrap().result.is_some()
    }

    /// The result if done, else None.
    fn result(&self) -> Option<String> {
        self.shared.state.lock().unwrap().result.clone()
    }

    /// Waits until done or `timeout` seconds passed (None: no limit), with the GIL released;
    /// Ctrl-C raises KeyboardInterrupt. Returns whether it is done.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let deadline = timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        let shared = self.shared.clone();
        py.detach(move || {
            let mut state = shared.state.lock().unwrap();
            loop {
                if state.result.is_some() {
                    return Ok(true);
                }
                let now = Instant::now();
                let slice = match deadline {
                    Some(d) if d <= now => return Ok(false),
                    Some(d) => (d - now).min(Duration::from_millis(100)),
                    None => Duration::from_millis(100),
                };
                state = shared.cond.wait_timeout(state, slice).unwrap().0;
                if state.result.is_none() {
                    drop(state);
                    Python::attach(|py| py.check_signals())?;
                    state = shared.state.lock().unwrap();
                }
            }
        })
    }

    /// Calls `callback()` (no arguments) when done, from a plastic thread; at once if done.
    fn add_done_callback(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<()> {
        {
            let mut state = self.shared.state.lock().unwrap();
            if state.result.is_none() {
                state.callbacks.push(callback);
                return Ok(());
            }
        }
        callback.bind(py).call0()?;
        Ok(())
    }

    /// Stops waiting here; the nodes are not told (`abort` does that). For a map, no more tasks
    /// go out. The result becomes `{"cancelled": true}`. Returns False if already done.
    fn cancel(&self) -> bool {
        let task = {
            let state = self.shared.state.lock().unwrap();
            if state.result.is_some() {
                return false;
            }
            state.task.clone()
        };
        if let Some(task) = task {
            task.abort();
        }
        self.shared
            .finish(r#"{"outcomes": [], "cancelled": true}"#.into());
        true
    }

    /// Sends the protocol's `abort` for this request to every node it went to (one running
    /// it raises `KeyboardInterrupt` there and answers with that error; one that has not run
    /// it yet never will, and answers `Aborted`) and waits up to `timeout` for their answers:
    /// `[{"node", "ok", "result": {"aborted": id, "was": ...}}, ...]` as JSON text. Does
    /// nothing once done.
    #[pyo3(signature = (timeout=5.0))]
    fn abort(&self, py: Python<'_>, timeout: f64) -> PyResult<String> {
        if self.shared.state.lock().unwrap().result.is_some() {
            return Ok("[]".into());
        }
        let timeout = Duration::from_secs_f64(timeout.clamp(0.001, 1e6));
        let (client, sent) = (self.shared.client.clone(), self.shared.sent.clone());
        let replies = block_on(py, async move { abort(&client, &sent, timeout).await })?;
        Ok(serde_json::Value::Array(replies).to_string())
    }

    /// Seconds from submission until done (or until now, while running).
    #[getter]
    fn elapsed(&self) -> f64 {
        let state = self.shared.state.lock().unwrap();
        let end = state.finished.unwrap_or_else(Instant::now);
        (end - self.shared.started).as_secs_f64()
    }
}
