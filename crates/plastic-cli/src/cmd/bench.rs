//! `plastic bench`: the measuring instrument of docs/performance.md.
//!
//! The hub and the simulated fleet run as separate processes (as in production, and because a
//! 10,000-node fan-out needs more file descriptors than one process may open here); this
//! process is the client. Every figure is measured, printed, and optionally written as JSON.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use plastic_client::{BrokerUrl, Client, ClientOptions, UploadFile, UploadOptions};
use plastic_proto::command::Eval;
use plastic_proto::Operation;
use plastic_proto::{NodeName, RelPath};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

use clap::Args;

use crate::global::Global;

struct Counts {
    warmup: usize,
    sequential: usize,
    pipelined: usize,
    window: usize,
    fanout_rounds: usize,
}

impl Counts {
    fn new(quick: bool) -> Self {
        if quick {
            Counts {
                warmup: 50,
                sequential: 300,
                pipelined: 2_000,
                window: 64,
                fanout_rounds: 1,
            }
        } else {
            Counts {
                warmup: 1_000,
                sequential: 5_000,
                pipelined: 50_000,
                window: 256,
                fanout_rounds: 3,
            }
        }
    }
}

pub async fn run(global: &Global, args: BenchArgs) -> Result<ExitCode> {
    let counts = Counts::new(args.quick);
    let (mut hub, broker, http) = if global.broker_given {
        (None, crate::session::broker_url(global)?, None)
    } else {
        let (child, port, http) = spawn_hub(true).await?;
        (Some(child), BrokerUrl::local(port), Some(http))
    };
    let hub_pid = hub.as_ref().and_then(Child::id);
    let label = if hub.is_some() {
        "embedded".to_owned()
    } else {
        broker.to_string()
    };
    eprintln!("bench: broker {label} ({broker})");
    // On Ctrl-C or SIGTERM the children (hub, sims) are dropped, which kills them.
    let result = tokio::select! {
        result = measure(&broker, hub_pid, http, &counts, &args) => result,
        _ = super::node::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(hub) = hub.as_mut() {
        let _ = hub.kill().await;
    }
    let mut report = result?;
    report["broker"] = json!(label);
    report["machine"] = machine();
    print_report(&report);
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("bench: figures written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure(
    broker: &BrokerUrl,
    hub_pid: Option<u32>,
    http: Option<u16>,
    counts: &Counts,
    args: &BenchArgs,
) -> Result<Value> {
    let mut opts = ClientOptions::new(broker.clone(), ClientOptions::ephemeral_name("bench"));
    opts.keep_alive = Duration::from_secs(60);
    let (client, _) = Client::connect(opts);
    client.wait_connected(Duration::from_secs(10)).await?;
    let mut report = json!({});

    let fleet = Sim::start(broker, 100, "b").await?;
    let names: Vec<NodeName> = (1..=100)
        .map(|i| NodeName::parse(&format!("b-{i}")))
        .collect::<Result<_, _>>()?;
    eprintln!("bench: latency");
    report["latency"] = latency(&client, &names[0], counts).await?;
    eprintln!("bench: raw MQTT floor");
    report["raw_mqtt_floor"] = raw_floor(broker, counts, QoS::AtLeastOnce).await?;
    // What a QoS 0 request path could gain at most (issue 14): the same floor without the
    // PUBACKs (docs/performance.md, "QoS 0").
    report["raw_mqtt_floor_qos0"] = raw_floor(broker, counts, QoS::AtMostOnce).await?;
    eprintln!("bench: throughput");
    report["throughput"] = json!([
        throughput(&client, &names[..10], counts).await?,
        throughput(&client, &names, counts).await?
    ]);
    eprintln!("bench: deploy");
    report["deploy"] = deploy(&client, &names).await?;
    if let Some(http) = http {
        eprintln!("bench: HTTP API");
        report["api_latency"] = api_latency(http, &names[0], counts).await?;
    }
    fleet.stop().await;
    if http.is_some() {
        eprintln!("bench: history on and off");
        report["history_cost"] = history_cost(counts).await?;
    }

    let mut fanouts = Vec::new();
    let mut memory = Vec::new();
    // The hub and the simulated fleet raise theirs to the same hard limit.
    let files = crate::fdlimit::raise();
    for &n in &args.fanout {
        let needs = if hub_pid.is_some() {
            crate::fdlimit::hub_needs(n)
        } else {
            n as u64 + 256
        };
        if needs > files {
            let why = format!(
                "{n} connections need about {needs} open files{} and this machine allows {files} (ulimit -Hn)",
                if hub_pid.is_some() { " in the embedded hub (3 per connection, docs/scaling.md)" } else { "" }
            );
            eprintln!("bench: fan-out to {n} nodes skipped: {why}");
            fanouts.push(json!({"nodes": n, "skipped": why}));
            continue;
        }
        eprintln!("bench: fan-out to {n} nodes");
        let hub_before = hub_pid.and_then(rss_kb);
        let fleet = Sim::start(broker, n, &format!("f{n}")).await?;
        // Idle: every node connected and announced, nothing running.
        let hub_after = hub_pid.and_then(rss_kb);
        let sim_rss = fleet.pid.and_then(rss_kb).unwrap_or(0);
        let per_node = |before: Option<u64>, after: Option<u64>| match (before, after) {
            (Some(b), Some(a)) => json!((a.saturating_sub(b)) as f64 / n as f64),
            _ => Value::Null,
        };
        memory.push(json!({
            "nodes": n, "hub_rss_kb_before": hub_before, "hub_rss_kb": hub_after,
            "hub_kb_per_node": per_node(hub_before, hub_after),
            "sim_rss_kb": sim_rss, "sim_kb_per_node": sim_rss as f64 / n as f64,
        }));
        let expected: Vec<NodeName> = (1..=n)
            .map(|i| NodeName::parse(&format!("f{n}-{i}")))
            .collect::<Result<_, _>>()?;
        let mut best: Option<(f64, usize)> = None;
        for _ in 0..counts.fanout_rounds {
            let started = Instant::now();
            let replies = client
                .request_many(
                    &client.topics().all_inbox(),
                    "all",
                    Eval::new("2+3").to_request(),
                    &expected,
                    Duration::from_secs(60),
                )
                .await?;
            let seconds = started.elapsed().as_secs_f64();
            let ok = replies
                .iter()
                .filter(|(_, r)| matches!(r, Ok(reply) if reply.ok && reply.result == 5))
                .count();
            if best.is_none_or(|(s, _)| seconds < s) {
                best = Some((seconds, ok));
            }
        }
        let (seconds, replies) = best.unwrap_or_default();
        let nodes_api = match http {
            Some(port) => api_nodes(port).await?,
            None => Value::Null,
        };
        fanouts.push(
            json!({"nodes": n, "seconds": seconds, "replies": replies, "api_nodes": nodes_api}),
        );
        fleet.stop().await;
    }
    report["fanout"] = json!(fanouts);
    report["memory"] = json!(memory);
    client.shutdown(None).await;
    Ok(report)
}

/// What recording every request and reply costs: pipelined throughput over 10 nodes on two
/// fresh hubs, one with history and one with `--history off`, measured in turns (on, off, off,
/// on), best of each.
async fn history_cost(counts: &Counts) -> Result<Value> {
    let mut best = [0.0f64; 2];
    let mut hubs = Vec::new();
    let mut setups = Vec::new();
    for (i, history) in [true, false].into_iter().enumerate() {
        let (hub, port, _) = spawn_hub(history).await?;
        hubs.push(hub);
        let broker = BrokerUrl::local(port);
        let mut opts = ClientOptions::new(broker.clone(), ClientOptions::ephemeral_name("bench"));
        opts.keep_alive = Duration::from_secs(60);
        let (client, _) = Client::connect(opts);
        client.wait_connected(Duration::from_secs(10)).await?;
        let prefix = format!("h{i}");
        let fleet = Sim::start(&broker, 10, &prefix).await?;
        let names: Vec<NodeName> = (1..=10)
            .map(|n| NodeName::parse(&format!("{prefix}-{n}")))
            .collect::<Result<_, _>>()?;
        setups.push((client, fleet, names));
    }
    // On, off, then off, on: neither always runs first.
    for order in [[0, 1], [1, 0]] {
        for i in order {
            let (client, _, names) = &setups[i];
            let t = throughput(client, names, counts).await?;
            best[i] = best[i].max(t["rps"].as_f64().unwrap_or(0.0));
        }
    }
    for (client, fleet, _) in setups {
        fleet.stop().await;
        client.shutdown(None).await;
    }
    for mut hub in hubs {
        let _ = hub.kill().await;
    }
    let [on, off] = best;
    Ok(json!({"rps_history_on": on, "rps_history_off": off, "cost": 1.0 - on / off.max(1e-9)}))
}

/// Nearest-rank percentiles (`sorted[ceil(p * n) - 1]`), the method bench/ipyparallel_bench.py
/// uses too, so the figures compare.
fn percentiles(mut micros: Vec<f64>) -> Value {
    micros.sort_by(|a, b| a.total_cmp(b));
    let n = micros.len();
    let at = |p: f64| micros[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let mean = micros.iter().sum::<f64>() / n as f64;
    json!({"requests": n, "p50_us": at(0.5), "p90_us": at(0.9), "p99_us": at(0.99), "mean_us": mean})
}

async fn latency(client: &Client, node: &NodeName, counts: &Counts) -> Result<Value> {
    let mut micros = Vec::with_capacity(counts.sequential);
    for i in 0..counts.warmup + counts.sequential {
        let started = Instant::now();
        let reply = client
            .request(node, Eval::new("2+3").to_request(), Duration::from_secs(10))
            .await?;
        let elapsed = started.elapsed();
        if !(reply.ok && reply.result == 5) {
            bail!("eval 2+3 on {node} answered {reply:?}");
        }
        if i >= counts.warmup {
            micros.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    Ok(percentiles(micros))
}

async fn throughput(client: &Client, nodes: &[NodeName], counts: &Counts) -> Result<Value> {
    let mut set = JoinSet::new();
    let started = Instant::now();
    let (mut sent, mut done) = (0usize, 0usize);
    while done < counts.pipelined {
        while set.len() < counts.window && sent < counts.pipelined {
            let client = client.clone();
            let node = nodes[sent % nodes.len()].clone();
            set.spawn(async move {
                client
                    .request(
                        &node,
                        Eval::new("2+3").to_request(),
                        Duration::from_secs(30),
                    )
                    .await
            });
            sent += 1;
        }
        match set.join_next().await {
            Some(Ok(Ok(reply))) if reply.ok => done += 1,
            Some(Ok(Ok(reply))) => bail!("error reply during throughput run: {:?}", reply.error),
            Some(Ok(Err(e))) => bail!("request failed during throughput run: {e}"),
            Some(Err(e)) => bail!("request task failed: {e}"),
            None => break,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(
        json!({"nodes": nodes.len(), "window": counts.window, "requests": done, "seconds": seconds, "rps": done as f64 / seconds}),
    )
}

async fn deploy(client: &Client, nodes: &[NodeName]) -> Result<Value> {
    let data: Vec<u8> = (0..100 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let file = UploadFile::new(RelPath::parse("bench.bin")?, data.clone())?;
    let mut options = UploadOptions::new(Duration::from_secs(30));
    options.chunk_size = Some(16 * 1024);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for node in nodes {
        let node = node.clone();
        let client = client.clone();
        let (file, options) = (file.clone(), options.clone());
        set.spawn(async move {
            // Resumes, chunk sizing and the final sha256 check are the client's, as for `cp`.
            client
                .upload(&node, &file, &options)
                .await
                .map(drop)
                .map_err(|e| anyhow::anyhow!("upload to {node}: {e}"))
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes = data.len() * nodes.len();
    Ok(
        json!({"nodes": nodes.len(), "bytes": data.len(), "seconds": seconds, "mb_per_s": bytes as f64 / seconds / 1e6}),
    )
}

/// The floor: bare request/reply at `qos` between two rumqttc clients through the same broker,
/// with no envelope, no JSON and no Python.
async fn raw_floor(broker: &BrokerUrl, counts: &Counts, qos: QoS) -> Result<Value> {
    let suffix = &plastic_proto::new_message_id()[..8];
    let (req_topic, rep_topic) = (
        format!("plasticbench/{suffix}/req"),
        format!("plasticbench/{suffix}/rep"),
    );
    let connect = |id: String| {
        let mut o = MqttOptions::new(id, broker.host.clone(), broker.port);
        o.set_keep_alive(Duration::from_secs(60));
        // rumqttc caps QoS 1 messages in flight at 100 by default; QoS 0 has no cap: the
        // window, for both, keeps the two pipelined rows comparable.
        o.set_inflight(counts.window.min(u16::MAX as usize) as u16);
        if let Some(user) = &broker.username {
            o.set_credentials(user.clone(), broker.password.clone().unwrap_or_default());
        }
        let (c, mut el) = AsyncClient::new(o, 64);
        let mut net = el.network_options();
        net.set_tcp_nodelay(true);
        el.set_network_options(net);
        (c, el)
    };
    // Echo side: its event loop forwards requests to a task that publishes the replies.
    let (echo, echo_loop) = connect(format!("bench-echo-{suffix}"));
    let (echo_subscribed, mut requests, echo_driver) = drive(echo_loop);
    echo.subscribe(&req_topic, qos).await?;
    let echo_pub = echo.clone();
    let rep = rep_topic.clone();
    let echo_sender = tokio::spawn(async move {
        while let Some(payload) = requests.recv().await {
            let _ = echo_pub.publish(&rep, qos, false, payload).await;
        }
    });
    tokio::time::timeout(Duration::from_secs(10), echo_subscribed).await??;
    // Requesting side.
    let (req, req_loop) = connect(format!("bench-req-{suffix}"));
    let (req_subscribed, mut got_rx, req_driver) = drive(req_loop);
    req.subscribe(&rep_topic, qos).await?;
    tokio::time::timeout(Duration::from_secs(10), req_subscribed).await??;
    let mut micros = Vec::with_capacity(counts.sequential);
    for i in 0..counts.warmup + counts.sequential {
        let started = Instant::now();
        req.publish(&req_topic, qos, false, b"2+3".to_vec()).await?;
        tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
            .await?
            .context("echo gone")?;
        if i >= counts.warmup {
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
    }
    // Pipelined: `window` requests in flight, as plastic's throughput rows (one echo side,
    // where plastic's rows spread over 10 or 100 nodes). At QoS 0 a broker may drop messages:
    // a reply missing for a second ends the phase, and the figures say how many were lost.
    let started = Instant::now();
    let (mut sent, mut answered, mut lost) = (0, 0, 0);
    let mut last_answer = started;
    while answered < counts.pipelined {
        while sent < counts.pipelined && sent - answered < counts.window {
            req.publish(&req_topic, qos, false, b"2+3".to_vec()).await?;
            sent += 1;
        }
        match tokio::time::timeout(Duration::from_secs(1), got_rx.recv()).await {
            Ok(Some(_)) => {
                answered += 1;
                last_answer = Instant::now();
            }
            Ok(None) => bail!("the raw floor's echo side is gone"),
            Err(_) => {
                lost = sent - answered;
                break;
            }
        }
    }
    let seconds = (last_answer - started).as_secs_f64();
    let mut figures = percentiles(micros);
    figures["pipelined"] = json!({
        "requests": answered,
        "lost": lost,
        "window": counts.window,
        "seconds": seconds,
        "rps": answered as f64 / seconds,
    });
    let _ = req.disconnect().await;
    let _ = echo.disconnect().await;
    echo_sender.abort();
    echo_driver.abort();
    req_driver.abort();
    Ok(figures)
}

/// Polls a bare rumqttc event loop: reports the first SUBACK and forwards every received
/// payload. Publishing happens elsewhere (awaiting a publish in this task could deadlock).
fn drive(
    mut eventloop: rumqttc::EventLoop,
) -> (
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>,
    tokio::task::JoinHandle<()>,
) {
    let (subacked_tx, subacked) = tokio::sync::oneshot::channel();
    let (payload_tx, payloads) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut subacked_tx = Some(subacked_tx);
        while let Ok(event) = eventloop.poll().await {
            match event {
                Event::Incoming(Incoming::SubAck(_)) => {
                    if let Some(tx) = subacked_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Event::Incoming(Incoming::Publish(p)) => {
                    let _ = payload_tx.send(p.payload);
                }
                _ => {}
            }
        }
    });
    (subacked, payloads, driver)
}

/// A `plastic sim` child process.
struct Sim {
    child: Child,
    pid: Option<u32>,
    /// The simulated nodes' files, removed when they stop.
    root: std::path::PathBuf,
}

impl Sim {
    async fn start(broker: &BrokerUrl, nodes: usize, prefix: &str) -> Result<Sim> {
        let root =
            std::env::temp_dir().join(format!("plastic-bench-{}-{prefix}", std::process::id()));
        let mut child = Command::new(std::env::current_exe()?)
            .args([
                "sim",
                "--nodes",
                &nodes.to_string(),
                "--name-prefix",
                prefix,
                "--broker",
                &broker.to_string(),
            ])
            .arg("--root")
            .arg(&root)
            .env_remove("PLASTIC_PREFIX")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting plastic sim")?;
        let pid = child.id();
        let mut lines = BufReader::new(child.stderr.take().context("sim stderr")?).lines();
        let online = format!("{nodes} nodes online");
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if line.contains(&online) {
                    return Ok(());
                }
            }
            bail!("plastic sim exited before its nodes came online")
        };
        tokio::time::timeout(Duration::from_secs(300), wait)
            .await
            .context("simulated nodes did not come online")??;
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Sim { child, pid, root })
    }

    async fn stop(mut self) {
        if let Some(pid) = self.pid {
            // SIGTERM: the nodes say `offline` and disconnect cleanly.
            unsafe_free_terminate(pid);
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Sends SIGTERM through `kill(1)`, to avoid unsafe libc calls in the binary.
fn unsafe_free_terminate(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// `plastic hub` on free ports, its history in a temporary file (or off): (child, MQTT port,
/// HTTP port).
async fn spawn_hub(history: bool) -> Result<(Child, u16, u16)> {
    let history_file = std::env::temp_dir().join(format!(
        "plastic-bench-history-{}-{}.db",
        std::process::id(),
        &plastic_proto::new_message_id()[..8]
    ));
    let history_arg = if history {
        history_file.to_string_lossy().into_owned()
    } else {
        "off".to_owned()
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["hub", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--history", &history_arg])
        .env_remove("PLASTIC_BROKER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting plastic hub")?;
    let mut lines = BufReader::new(child.stdout.take().context("hub stdout")?).lines();
    let ports = tokio::time::timeout(Duration::from_secs(30), async {
        let mut mqtt = None;
        while let Some(line) = lines.next_line().await? {
            let port = || {
                line.rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok())
            };
            if line.starts_with("plastic hub: MQTT broker listening on ") {
                mqtt = Some(port().context("hub printed no port")?);
            }
            if line.starts_with("plastic hub: dashboard and API on ") {
                let http = port().context("hub printed no HTTP port")?;
                return Ok((mqtt.context("no MQTT port before the HTTP one")?, http));
            }
        }
        bail!("the hub exited before listening")
    })
    .await
    .context("the hub did not start")??;
    tokio::spawn(async move {
        while let Ok(Some(_)) = lines.next_line().await {}
        for suffix in ["", "-wal", "-shm"] {
            let mut name = history_file.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    });
    Ok((child, ports.0, ports.1))
}

/// A keep-alive HTTP/1.1 connection to the hub's API, as a script's HTTP library would hold.
struct Api {
    conn: tokio::io::BufStream<tokio::net::TcpStream>,
    port: u16,
    csrf: String,
}

impl Api {
    async fn connect(port: u16) -> Result<Api> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        tcp.set_nodelay(true)?;
        let mut api = Api {
            conn: tokio::io::BufStream::new(tcp),
            port,
            csrf: String::new(),
        };
        let session: Value =
            serde_json::from_slice(&api.call("GET", "/api/v1/session", b"").await?.1)?;
        api.csrf = session["csrf"].as_str().unwrap_or_default().to_owned();
        Ok(api)
    }

    async fn call(&mut self, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nX-CSRF-Token: {}\r\nContent-Length: {}\r\n\r\n",
            self.port,
            self.csrf,
            body.len()
        );
        self.conn.write_all(head.as_bytes()).await?;
        self.conn.write_all(body).await?;
        self.conn.flush().await?;
        let mut line = String::new();
        self.conn.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.conn.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.conn.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

/// `POST /api/v1/requests` eval round trips on one kept-alive connection, like `latency`.
async fn api_latency(port: u16, node: &NodeName, counts: &Counts) -> Result<Value> {
    let mut api = Api::connect(port).await?;
    let body = json!({"target": node.as_str(), "message": {"type": "eval", "to_evaluate": "2+3"}})
        .to_string();
    let mut micros = Vec::with_capacity(counts.sequential);
    for i in 0..counts.warmup + counts.sequential {
        let started = Instant::now();
        let (status, reply) = api
            .call("POST", "/api/v1/requests", body.as_bytes())
            .await?;
        let elapsed = started.elapsed();
        let reply: Value = serde_json::from_slice(&reply)?;
        if status != 200 || reply["results"][0]["result"] != 5 {
            bail!("API eval answered {status} {reply}");
        }
        if i >= counts.warmup {
            micros.push(elapsed.as_secs_f64() * 1e6);
        }
    }
    Ok(percentiles(micros))
}

/// `GET /api/v1/nodes` (what the dashboard loads first): time and size, best of three.
async fn api_nodes(port: u16) -> Result<Value> {
    let mut api = Api::connect(port).await?;
    let mut best: Option<(f64, usize, usize)> = None;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = api.call("GET", "/api/v1/nodes", b"").await?;
        let seconds = started.elapsed().as_secs_f64();
        if status != 200 {
            bail!("GET /api/v1/nodes answered {status}");
        }
        let nodes = serde_json::from_slice::<Vec<Value>>(&body)?.len();
        if best.is_none_or(|(s, _, _)| seconds < s) {
            best = Some((seconds, body.len(), nodes));
        }
    }
    let (seconds, bytes, nodes) = best.unwrap_or_default();
    Ok(json!({"nodes": nodes, "ms": seconds * 1000.0, "bytes": bytes}))
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned());
    let mem_kb: Option<f64> = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemTotal:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    });
    json!({
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "cpu_model": model,
        "memory_gb": mem_kb.map(|k| (k / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_owned()),
    })
}

fn print_report(r: &Value) {
    let f = |v: &Value| {
        v.as_f64()
            .map(|x| format!("{x:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    println!(
        "plastic bench — broker: {}",
        r["broker"].as_str().unwrap_or("?")
    );
    for (title, key) in [
        ("latency (eval 2+3)", "latency"),
        ("raw MQTT floor", "raw_mqtt_floor"),
        ("raw MQTT floor, QoS 0", "raw_mqtt_floor_qos0"),
    ] {
        let l = &r[key];
        println!(
            "  {title:<22} p50 {} us  p90 {} us  p99 {} us  ({} requests){}",
            f(&l["p50_us"]),
            f(&l["p90_us"]),
            f(&l["p99_us"]),
            l["requests"],
            l["pipelined"]["rps"]
                .as_f64()
                .map(|rps| format!("; pipelined {rps:.0} req/s"))
                .unwrap_or_default()
        );
    }
    for t in r["throughput"].as_array().into_iter().flatten() {
        println!(
            "  throughput {:>4} nodes   {} req/s (window {}, {} requests)",
            t["nodes"],
            f(&t["rps"]),
            t["window"],
            t["requests"]
        );
    }
    for t in r["fanout"].as_array().into_iter().flatten() {
        if let Some(why) = t["skipped"].as_str() {
            println!("  fan-out {:>6} nodes   skipped: {why}", t["nodes"]);
            continue;
        }
        println!(
            "  fan-out {:>6} nodes   {} ms until {} replies",
            t["nodes"],
            f(&(t["seconds"].as_f64().unwrap_or(0.0) * 1000.0).into()),
            t["replies"]
        );
    }
    for m in r["memory"].as_array().into_iter().flatten() {
        println!(
            "  memory  {:>6} nodes   hub {} KB/node, sim {} KB/node",
            m["nodes"],
            f(&m["hub_kb_per_node"]),
            f(&m["sim_kb_per_node"])
        );
    }
    if let (Some(api), Some(cli)) = (
        r["api_latency"]["p50_us"].as_f64(),
        r["latency"]["p50_us"].as_f64(),
    ) {
        println!(
            "  HTTP API eval          p50 {} us  p99 {} us  ({} us over the client's p50)",
            f(&api.into()),
            f(&r["api_latency"]["p99_us"]),
            f(&(api - cli).into())
        );
    }
    for t in r["fanout"].as_array().into_iter().flatten() {
        let a = &t["api_nodes"];
        if a.is_object() {
            println!(
                "  GET /api/v1/nodes {:>6} nodes   {} ms, {} KB",
                a["nodes"],
                f(&a["ms"]),
                f(&(a["bytes"].as_f64().unwrap_or(0.0) / 1024.0).into())
            );
        }
    }
    let h = &r["history_cost"];
    if h.is_object() {
        println!(
            "  history: pipelined {} req/s with it, {} without ({}% cost)",
            f(&h["rps_history_on"]),
            f(&h["rps_history_off"]),
            f(&(h["cost"].as_f64().unwrap_or(0.0) * 100.0).into())
        );
    }
    let d = &r["deploy"];
    println!(
        "  deploy 100 KB to {} nodes: {} s, {} MB/s",
        d["nodes"],
        f(&d["seconds"]),
        f(&d["mb_per_s"])
    );
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Small counts, for a smoke run (CI)
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Fan-out sizes (simulated nodes reached by one broadcast)
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000, 10000])]
    pub fanout: Vec<usize>,
}
