//! `Core`: one connection (a `plastic_client::Client`) and the operations Python needs:
//! the fleet's presence, requests to a TARGET (blocking or in the background), uploads and
//! downloads.
//!
//! Every node's outcome crosses to Python as one JSON object:
//! `{"node", "ok", "result", "repr", "stdout", "error": {"kind", "message", "traceback"}}`;
//! an outcome without a reply (timeout, node lost, not online) has `"local": true` and the
//! client's error as `error`. A run's result is `{"outcomes": [...sorted by node], "error"}`
//! where `error` says why nothing was sent (no node targeted, the broker unreachable).
//! A download's `result` is the file's bytes as base64 (standard, padded), or the local path
//! it was saved to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use plastic_client::{
    BrokerUrl, Client, ClientError, ClientOptions, DownloadError, KeyRing, UploadError,
    UploadOptions,
};
use plastic_proto::command::{Abort, Eval};
use plastic_proto::{NodeName, Operation, RelPath, Reply, Topics};
use pyo3::exceptions::{PyConnectionError, PyValueError};
use pyo3::prelude::*;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::ops::{self, Work};
use crate::pending::{Pending, Shared};
use crate::runtime::{block_on, runtime};
use crate::target::{Fleet, Spec};

/// Called with each node's outcome (JSON text) as it arrives.
type OnEach = Option<Arc<Py<PyAny>>>;

/// The (node, message id) pairs a job has sent, newest last, and whether it was aborted: one
/// lock for both, so a request is either recorded before the abort reads the list (and
/// aborted on its node) or not sent at all.
#[derive(Default)]
pub struct SentIds {
    ids: Vec<(NodeName, String)>,
    aborted: bool,
}

pub type Sent = Arc<Mutex<SentIds>>;

/// A request the job did not send because it was aborted first.
fn not_sent(node: &str) -> Value {
    failure(
        node,
        "Aborted",
        "aborted before it was sent; it did not run",
    )
}

/// Sends the protocol's `abort` for each request in `sent`: one running is interrupted, one
/// waiting on the node or not delivered yet never runs, one finished is left as it is.
/// Returns each node's reply as an outcome.
pub async fn abort(client: &Client, sent: &Sent, timeout: Duration) -> Vec<Value> {
    let targets: Vec<(NodeName, String)> = {
        let mut sent = sent.lock().unwrap();
        sent.aborted = true;
        sent.ids.clone()
    };
    let mut set = JoinSet::new();
    for (node, id) in targets {
        let client = client.clone();
        set.spawn(async move {
            let request = Abort { id }.to_request();
            let outcome = client.request(&node, request, timeout).await;
            reply_outcome(node.as_str(), outcome)
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(outcome)) = set.join_next().await {
        out.push(outcome);
    }
    out.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
    out
}

#[pyclass(frozen, module = "plastic._plastic")]
pub struct Core {
    client: Client,
    fleet: Arc<Fleet>,
    closed: std::sync::atomic::AtomicBool,
}

fn seconds(s: f64, what: &str) -> PyResult<Duration> {
    if s.is_finite() && s > 0.0 && s < 1e7 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(PyValueError::new_err(format!(
            "{what} must be a positive number of seconds"
        )))
    }
}

#[pymethods]
impl Core {
    /// Connects (the GIL released) and learns the fleet's presence. `name_prefix` names this
    /// client `<prefix>-xxxxxxxx` (or `USER.xxxxxxxx` when the broker URL has a user).
    #[staticmethod]
    #[pyo3(signature = (broker, prefix="plastic", name_prefix="py", ca=None, keys=None, timeout=10.0))]
    fn connect(
        py: Python<'_>,
        broker: &str,
        prefix: &str,
        name_prefix: &str,
        ca: Option<std::path::PathBuf>,
        keys: Option<std::path::PathBuf>,
        timeout: f64,
    ) -> PyResult<Core> {
        let timeout = seconds(timeout, "timeout")?;
        // `URL[,URL...]`: the brokers of one cluster, tried in turn (docs/scaling.md).
        let mut urls =
            BrokerUrl::parse_list(broker).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let url = urls.remove(0);
        let name = match &url.username {
            Some(user) => ClientOptions::owned_name(user).map_err(|e| {
                PyValueError::new_err(format!(
                    "user name `{user}` is not a valid client name: {e}"
                ))
            })?,
            None => ClientOptions::ephemeral_name(name_prefix),
        };
        let mut opts = ClientOptions::new(url.clone(), name);
        let shown = std::iter::once(url)
            .chain(urls.iter().cloned())
            .map(|u| u.to_string())
            .collect::<Vec<_>>()
            .join(",");
        opts.alternates = urls;
        opts.topics = Topics::new(prefix).map_err(|e| PyValueError::new_err(e.to_string()))?;
        opts.ca_file = ca;
        if let Some(keys) = keys {
            opts.keys = Arc::new(KeyRing::in_dir(keys));
        }
        opts.presence_buffer = 4096;
        let fleet = Arc::new(Fleet::default());
        let f = fleet.clone();
        let connected = block_on(py, async move {
            let (client, _deliveries) = Client::connect(opts);
            let up = client.wait_connected(timeout).await;
            if let Err(e) = up {
                client.shutdown(None).await;
                return Err(e.to_string());
            }
            f.follow(&client);
            if let Err(e) = f.refresh(&client, timeout).await {
                client.shutdown(None).await;
                return Err(e);
            }
            Ok(client)
        })?;
        let client = connected.map_err(|e| {
            PyConnectionError::new_err(format!(
                "cannot connect to the broker at {shown} (is `plastic hub` running?): {e}"
            ))
        })?;
        Ok(Core {
            client,
            fleet,
            closed: false.into(),
        })
    }

    /// This client's name (its inbox is `<prefix>/<name>/in`).
    #[getter]
    fn name(&self) -> String {
        self.client.name().to_string()
    }

    /// The broker's URL, without the password.
    #[getter]
    fn broker(&self) -> String {
        self.client.broker().to_string()
    }

    /// Every node's presence (JSON list), asked of the broker now.
    fn nodes(&self, py: Python<'_>, timeout: f64) -> PyResult<String> {
        let timeout = seconds(timeout, "timeout")?;
        let (client, fleet) = (self.client.clone(), self.fleet.clone());
        let nodes = block_on(py, async move { fleet.refresh(&client, timeout).await })?
            .map_err(PyConnectionError::new_err)?;
        Ok(serde_json::to_string(&nodes).unwrap_or_default())
    }

    /// The nodes TARGET means now: `{"nodes", "broadcast", "unreachable": [[node, why]]}`.
    fn resolve(&self, py: Python<'_>, target: &str, timeout: f64) -> PyResult<String> {
        let timeout = seconds(timeout, "timeout")?;
        let spec = Spec::parse(target).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let (client, fleet) = (self.client.clone(), self.fleet.clone());
        let resolved = block_on(
            py,
            async move { fleet.resolve(&client, &spec, timeout).await },
        )?
        .map_err(PyConnectionError::new_err)?;
        Ok(json!({
            "nodes": resolved.nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "broadcast": resolved.broadcast.map(|(_, receiver)| receiver),
            "pool": resolved.pool,
            "unreachable": resolved.unreachable,
        })
        .to_string())
    }

    /// Runs `op` on every node of `target` and waits (GIL released) for every outcome.
    /// `on_each(outcome_json)` is called as each node's outcome arrives.
    #[pyo3(signature = (target, op, args, timeout, ttl=None, data=None, on_each=None))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        target: &str,
        op: &str,
        args: &str,
        timeout: f64,
        ttl: Option<f64>,
        data: Option<Vec<u8>>,
        on_each: Option<Py<PyAny>>,
    ) -> PyResult<String> {
        let job = self.job(target, op, args, timeout, ttl, data, on_each)?;
        let sent = job.sent.clone();
        match block_on(py, job.execute()) {
            Ok(result) => Ok(result.to_string()),
            Err(e) => {
                // Ctrl-C (or "interrupt kernel"): the nodes stop the Python they run for us
                // too, as the CLI's Ctrl-C does; nobody waits for their answers.
                let client = self.client.clone();
                runtime().spawn(async move {
                    abort(&client, &sent, Duration::from_secs(5)).await;
                });
                Err(e)
            }
        }
    }

    /// Like `run`, in the background: returns a `Pending` at once.
    #[pyo3(signature = (target, op, args, timeout, ttl=None, data=None, on_each=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        target: &str,
        op: &str,
        args: &str,
        timeout: f64,
        ttl: Option<f64>,
        data: Option<Vec<u8>>,
        on_each: Option<Py<PyAny>>,
    ) -> PyResult<Pending> {
        let job = self.job(target, op, args, timeout, ttl, data, on_each)?;
        let shared = Shared::new(self.client.clone(), job.sent.clone());
        let done = shared.clone();
        let task = runtime().spawn(async move {
            let result = job.execute().await.to_string();
            done.finish(result);
        });
        shared.set_task(task.abort_handle());
        Ok(Pending { shared })
    }

    /// `LoadBalancedView.map`: `name(*args)` for each `args` of `calls` (a JSON list of
    /// lists), each task one request to the pool `target` (the function's `source` travels
    /// with it), at most `window` tasks out at once, in the background. The result's
    /// `outcomes` are in the order of `calls`. Kept in Rust: a Python step per task would
    /// cost more than the task. `cancel()` sends no more tasks; those out run to their end.
    #[pyo3(signature = (target, name, source, calls, timeout, window, ttl=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit_map(
        &self,
        target: &str,
        name: &str,
        source: &str,
        calls: &str,
        timeout: f64,
        window: usize,
        ttl: Option<f64>,
    ) -> PyResult<Pending> {
        if self.closed() {
            return Err(PyConnectionError::new_err("the client is closed"));
        }
        let timeout = seconds(timeout, "timeout")?;
        if let Some(ttl) = ttl {
            seconds(ttl, "ttl")?;
        }
        let Spec::Pool(pool) =
            Spec::parse(target).map_err(|e| PyValueError::new_err(e.to_string()))?
        else {
            return Err(PyValueError::new_err(format!(
                "map goes to a pool, `pool:NAME`; not `{target}`"
            )));
        };
        let calls: Vec<Value> = serde_json::from_str(calls)
            .map_err(|e| PyValueError::new_err(format!("arguments are not JSON: {e}")))?;
        let mut requests = Vec::with_capacity(calls.len());
        for args in calls {
            let work = ops::build(
                "apply",
                &json!({"source": source, "name": name, "args": args}),
                None,
            )
            .map_err(PyValueError::new_err)?;
            let ops::Work::Request(mut request) = work else {
                unreachable!("apply is one request")
            };
            if let Some(ttl) = ttl {
                request.set_ttl(ttl);
            }
            requests.push(request);
        }
        let client = self.client.clone();
        let shared = Shared::new(client.clone(), Sent::default());
        let done = shared.clone();
        let window = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
        let task = runtime().spawn(async move {
            let mut set = JoinSet::new();
            for (i, request) in requests.into_iter().enumerate() {
                let Ok(permit) = window.clone().acquire_owned().await else {
                    break;
                };
                let (client, pool) = (client.clone(), pool.clone());
                set.spawn(async move {
                    let outcome = match client.request_pool(&pool, request, timeout).await {
                        Ok((member, outcome)) => reply_outcome(&member, outcome),
                        Err(e) => failure(&format!("pool:{pool}"), kind_of(&e), &e.to_string()),
                    };
                    drop(permit);
                    (i, outcome)
                });
            }
            let mut outcomes = vec![Value::Null; set.len()];
            while let Some(joined) = set.join_next().await {
                if let Ok((i, outcome)) = joined {
                    outcomes[i] = outcome;
                }
            }
            done.finish(json!({"outcomes": outcomes, "error": null}).to_string());
        });
        shared.set_task(task.abort_handle());
        Ok(Pending { shared })
    }

    /// The bench's baseline: `eval 2+3` on `node` through this very connection, timed in
    /// Rust (`plastic bench`'s latency loop). Microseconds per request.
    fn rust_latency(&self, py: Python<'_>, node: &str, count: usize) -> PyResult<Vec<f64>> {
        let node = NodeName::parse(node).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let client = self.client.clone();
        block_on(py, async move {
            let mut micros = Vec::with_capacity(count);
            for _ in 0..count {
                let started = Instant::now();
                let reply = client
                    .request(
                        &node,
                        Eval::new("2+3").to_request(),
                        Duration::from_secs(10),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if !(reply.ok && reply.result == 5) {
                    return Err(format!("eval 2+3 on {node} answered {reply:?}"));
                }
                micros.push(started.elapsed().as_secs_f64() * 1e6);
            }
            Ok(micros)
        })?
        .map_err(PyConnectionError::new_err)
    }

    /// The bench's baseline for throughput: `count` requests with `window` in flight over
    /// `nodes`, in Rust. Requests per second.
    fn rust_throughput(
        &self,
        py: Python<'_>,
        nodes: Vec<String>,
        count: usize,
        window: usize,
    ) -> PyResult<f64> {
        let nodes = nodes
            .iter()
            .map(|n| NodeName::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if nodes.is_empty() {
            return Err(PyValueError::new_err("no nodes"));
        }
        let client = self.client.clone();
        block_on(py, async move {
            let mut set = JoinSet::new();
            let started = Instant::now();
            let (mut sent, mut done) = (0usize, 0usize);
            while done < count {
                while set.len() < window.max(1) && sent < count {
                    let client = client.clone();
                    let node = nodes[sent % nodes.len()].clone();
                    set.spawn(async move {
                        let request = Eval::new("2+3").to_request();
                        client
                            .request(&node, request, Duration::from_secs(30))
                            .await
                    });
                    sent += 1;
                }
                match set.join_next().await {
                    Some(Ok(Ok(reply))) if reply.ok => done += 1,
                    Some(Ok(Ok(reply))) => return Err(format!("error reply: {:?}", reply.error)),
                    Some(Ok(Err(e))) => return Err(e.to_string()),
                    Some(Err(e)) => return Err(e.to_string()),
                    None => break,
                }
            }
            Ok(done as f64 / started.elapsed().as_secs_f64())
        })?
        .map_err(PyConnectionError::new_err)
    }

    /// Disconnects cleanly (idempotent).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if !self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let client = self.client.clone();
            block_on(py, async move { client.shutdown(None).await })?;
        }
        Ok(())
    }

    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Core {
    fn drop(&mut self) {
        if !self.closed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let client = self.client.clone();
            runtime().spawn(async move { client.shutdown(None).await });
        }
    }
}

impl Core {
    #[allow(clippy::too_many_arguments)]
    fn job(
        &self,
        target: &str,
        op: &str,
        args: &str,
        timeout: f64,
        ttl: Option<f64>,
        data: Option<Vec<u8>>,
        on_each: Option<Py<PyAny>>,
    ) -> PyResult<Job> {
        if self.closed() {
            return Err(PyConnectionError::new_err("the client is closed"));
        }
        let timeout = seconds(timeout, "timeout")?;
        if let Some(ttl) = ttl {
            seconds(ttl, "ttl")?;
        }
        let spec = Spec::parse(target).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let args: Value = serde_json::from_str(args)
            .map_err(|e| PyValueError::new_err(format!("arguments are not JSON: {e}")))?;
        let work = ops::build(op, &args, data).map_err(PyValueError::new_err)?;
        Ok(Job {
            sent: Sent::default(),
            client: self.client.clone(),
            fleet: self.fleet.clone(),
            target: target.to_owned(),
            spec,
            work,
            timeout,
            ttl,
            on_each: on_each.map(Arc::new),
        })
    }
}

/// One operation to a TARGET, ready to go.
struct Job {
    /// (node, message id) of every Python request sent, for `interrupt`.
    sent: Sent,
    client: Client,
    fleet: Arc<Fleet>,
    target: String,
    spec: Spec,
    work: Work,
    timeout: Duration,
    ttl: Option<f64>,
    on_each: OnEach,
}

impl Job {
    async fn execute(self) -> Value {
        let resolved = match self
            .fleet
            .resolve(&self.client, &self.spec, self.timeout)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return json!({"outcomes": [], "error": {"kind": "ClientError", "message": e}})
            }
        };
        let mut outcomes: Vec<Value> = Vec::new();
        for (node, why) in &resolved.unreachable {
            let outcome = failure(node, "NodeNotOnline", why);
            emit(&self.on_each, &outcome);
            outcomes.push(outcome);
        }
        if resolved.nodes.is_empty() {
            if outcomes.is_empty() {
                let message = match &self.spec {
                    Spec::Glob(pattern) => format!("no online node matches `{pattern}`"),
                    Spec::Pool(pool) => format!("no member of pool `{pool}` is online"),
                    _ => format!("no online node is targeted by `{}`", self.target),
                };
                return json!({"outcomes": [], "error": {"kind": "NoTarget", "message": message}});
            }
            return json!({"outcomes": outcomes, "error": null});
        }
        let mut request = match &self.work {
            Work::Request(r) => Some(r.clone()),
            Work::Upload(_) | Work::Download { .. } => None,
        };
        if let (Some(r), Some(ttl)) = (request.as_mut(), self.ttl) {
            r.set_ttl(ttl);
        }
        // A signed request is for one node (its receiver is signed): nodes with keys get
        // their own copy instead of a broadcast.
        if let Some(pool) = &resolved.pool {
            let Some(mut request) = request else {
                let message = "a pool takes requests (eval, exec, call, apply), not file transfers: name its members";
                return json!({"outcomes": [], "error": {"kind": "ClientError", "message": message}});
            };
            // The id goes down for every online member: whichever takes it, `abort` reaches it.
            let outcome = if !self.stamp(&mut request, &resolved.nodes) {
                not_sent(&format!("pool:{pool}"))
            } else {
                match self.client.request_pool(pool, request, self.timeout).await {
                    Ok((member, outcome)) => reply_outcome(&member, outcome),
                    Err(e) => failure(&format!("pool:{pool}"), kind_of(&e), &e.to_string()),
                }
            };
            emit(&self.on_each, &outcome);
            outcomes.push(outcome);
            return json!({"outcomes": outcomes, "error": null});
        }
        let broadcast = match (&resolved.broadcast, &request) {
            (Some(b), Some(_)) => match self.client.signs_for_any(&resolved.nodes) {
                Ok(false) => Some(b.clone()),
                _ => None,
            },
            _ => None,
        };
        if let (Some((topic, receiver)), Some(mut request)) = (broadcast, request.clone()) {
            if !self.stamp(&mut request, &resolved.nodes) {
                let outcomes: Vec<Value> = resolved
                    .nodes
                    .iter()
                    .map(|n| not_sent(n.as_str()))
                    .collect();
                return json!({"outcomes": outcomes, "error": null});
            }
            match self
                .client
                .request_many(&topic, &receiver, request, &resolved.nodes, self.timeout)
                .await
            {
                Ok(replies) => {
                    for (node, outcome) in replies {
                        let outcome = reply_outcome(&node, outcome);
                        emit(&self.on_each, &outcome);
                        outcomes.push(outcome);
                    }
                }
                Err(e) => {
                    return json!({"outcomes": outcomes, "error": {"kind": kind_of(&e), "message": e.to_string()}})
                }
            }
        } else if resolved.nodes.len() == 1 {
            // One node: run it right here, without a task (one thread hop fewer).
            let outcome = self.one(&resolved.nodes[0], request.as_ref()).await;
            emit(&self.on_each, &outcome);
            outcomes.push(outcome);
        } else {
            let this = Arc::new(self);
            let mut set = JoinSet::new();
            for node in resolved.nodes {
                let this = this.clone();
                let request = request.clone();
                set.spawn(async move { this.one(&node, request.as_ref()).await });
            }
            while let Some(joined) = set.join_next().await {
                let outcome = match joined {
                    Ok(outcome) => outcome,
                    Err(e) => failure("?", "ClientError", &e.to_string()),
                };
                emit(&this.on_each, &outcome);
                outcomes.push(outcome);
            }
        }
        outcomes.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
        json!({"outcomes": outcomes, "error": null})
    }

    /// Gives a request its message id now (the client keeps an id that is set) and records
    /// it for each node it goes to, so `abort` can name it. False: the job was aborted
    /// before this request went out; it must not be sent.
    #[must_use]
    fn stamp(&self, request: &mut plastic_proto::Request, nodes: &[NodeName]) -> bool {
        let id = plastic_proto::new_message_id();
        request
            .fields
            .insert("message_id".into(), id.clone().into());
        let mut sent = self.sent.lock().unwrap();
        if sent.aborted {
            return false;
        }
        for node in nodes {
            sent.ids.retain(|(n, _)| n != node);
            sent.ids.push((node.clone(), id.clone()));
        }
        true
    }

    async fn one(&self, node: &NodeName, request: Option<&plastic_proto::Request>) -> Value {
        let name = node.to_string();
        match (&self.work, request) {
            (_, Some(request)) => {
                let mut request = request.clone();
                if !self.stamp(&mut request, std::slice::from_ref(node)) {
                    return not_sent(&name);
                }
                let outcome = self.client.request(node, request, self.timeout).await;
                reply_outcome(&name, outcome)
            }
            (Work::Upload(file), None) => {
                let mut options = UploadOptions::new(self.timeout);
                options.ttl = self.ttl;
                match self.client.upload(node, file, &options).await {
                    Ok(done) => reply_outcome(&name, Ok(done.reply)),
                    Err(UploadError::Refused(reply)) => reply_outcome(&name, Ok(*reply)),
                    Err(UploadError::Client(e)) => reply_outcome(&name, Err(e)),
                    Err(e) => failure(&name, e.kind(), &e.to_string()),
                }
            }
            (Work::Download { path, dir }, None) => {
                let saved = match dir {
                    None => {
                        let mut bytes = Vec::new();
                        let mut sink = |chunk: &[u8]| {
                            bytes.extend_from_slice(chunk);
                            Ok(())
                        };
                        self.client
                            .download(node, path, &[], None, self.timeout, &mut sink)
                            .await
                            .map(|_| {
                                Value::String(
                                    base64::engine::general_purpose::STANDARD.encode(&bytes),
                                )
                            })
                    }
                    Some(dir) => save(&self.client, node, path, dir, self.timeout)
                        .await
                        .map(|dest| Value::String(dest.to_string_lossy().into_owned())),
                };
                match saved {
                    Ok(result) => json!({
                        "node": name, "ok": true, "result": result, "repr": false, "stdout": "",
                        "error": null, "local": false,
                    }),
                    Err(DownloadError::Refused(reply)) => reply_outcome(&name, Ok(*reply)),
                    Err(DownloadError::Client(e)) => reply_outcome(&name, Err(e)),
                    Err(e) => failure(&name, e.kind(), &e.to_string()),
                }
            }
            (Work::Request(_), None) => failure(&name, "ClientError", "no request"),
        }
    }
}

/// Downloads `path` from `node` into `dir/<node>/<its base name>` through a `.part`, resumed
/// and checked as `plastic cp` does (`Client::download_to_file`). Returns where the file is.
async fn save(
    client: &Client,
    node: &NodeName,
    path: &RelPath,
    dir: &Path,
    timeout: Duration,
) -> Result<PathBuf, DownloadError> {
    let folder = dir.join(node.as_str());
    std::fs::create_dir_all(&folder)?;
    let dest = folder.join(path.as_str().rsplit('/').next().unwrap_or(path.as_str()));
    client
        .download_to_file(node, path, &dest, None, timeout)
        .await?;
    Ok(dest)
}

fn emit(on_each: &OnEach, outcome: &Value) {
    if let Some(callback) = on_each {
        let text = outcome.to_string();
        Python::attach(|py| {
            if let Err(e) = callback.bind(py).call1((text,)) {
                e.write_unraisable(py, None);
            }
        });
    }
}

fn kind_of(e: &ClientError) -> &'static str {
    match e {
        ClientError::Timeout { .. } => "Timeout",
        ClientError::NodeLost { .. } => "NodeLost",
        ClientError::Closed => "Closed",
        _ => "ClientError",
    }
}

fn failure(node: &str, kind: &str, message: &str) -> Value {
    json!({
        "node": node, "ok": false, "result": null, "repr": false, "stdout": "", "local": true,
        "error": {"kind": kind, "message": message, "traceback": ""},
    })
}

fn reply_outcome(node: &str, outcome: Result<Reply, ClientError>) -> Value {
    match outcome {
        Ok(reply) => json!({
            "node": node, "ok": reply.ok, "result": reply.result, "repr": reply.repr,
            "stdout": reply.stdout, "error": reply.error, "local": false,
        }),
        Err(e) => failure(node, kind_of(&e), &e.to_string()),
    }
}
