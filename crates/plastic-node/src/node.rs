//! The node: connection, presence, message loop, shutdown.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use plastic_client::{BrokerUrl, Client, ClientOptions, Delivery};
use plastic_proto::{
    unix_seconds, ErrorInfo, NodeKey, NodeName, NodeState, Presence, Reply, Request, TopicKind,
    Topics, MAX_PAYLOAD, PROTOCOL_VERSION,
};
use rumqttc::QoS;
use serde_json::{json, Map, Value};
use tokio::runtime::Handle;

use crate::blink::Blinker;
use crate::files::FileStore;
use crate::gpio::Gpio;
use crate::python::{Host, Interpreter, PythonEngine};
use crate::recent::Recent;

#[derive(Clone)]
pub struct NodeConfig {
    pub broker: BrokerUrl,
    pub name: NodeName,
    pub topics: Topics,
    pub platform: String,
    pub groups: Vec<String>,
    /// The node's files live here; uploads and deployed scripts cannot leave it.
    pub root: PathBuf,
    pub gpio: Arc<dyn Gpio>,
    /// A Python interpreter to share with other nodes of this process (`plastic sim`), or
    /// `None` for one of the node's own.
    pub interpreter: Option<Arc<Interpreter>>,
    /// With a key, the node runs only requests signed with it (docs/protocol.md).
    pub key: Option<NodeKey>,
    /// How far a signed request's time stamp may be from this node's clock, in seconds.
    pub max_skew: f64,
    /// CA certificate for an `mqtts://` broker (`None`: the system's roots).
    pub ca_file: Option<PathBuf>,
}

/// Everything handlers share. Cheap to clone behind an `Arc`.
pub struct NodeShared {
    pub name: NodeName,
    pub platform: String,
    pub groups: Vec<String>,
    pub topics: Topics,
    pub gpio: Arc<dyn Gpio>,
    pub files: Arc<FileStore>,
    pub blinker: Blinker,
    pub started: Instant,
    /// Request ids seen lately, with their replies (duplicate deliveries run once), and the
    /// replay floor for signed requests.
    pub recent: Mutex<Recent>,
    pub key: Option<NodeKey>,
    pub max_skew: f64,
    /// When this node started, in Unix seconds: signed requests stamped earlier are refused.
    pub started_at: f64,
    client: Client,
    engine: Mutex<Arc<PythonEngine>>,
    shared_interpreter: Option<Arc<Interpreter>>,
    host: Arc<NodeHost>,
}

impl NodeShared {
    pub fn engine(&self) -> Arc<PythonEngine> {
        self.engine.lock().unwrap().clone()
    }

    fn new_engine(&self) -> PythonEngine {
        let root = self.files.root().to_path_buf();
        match &self.shared_interpreter {
            Some(interp) => PythonEngine::on(interp.clone(), self.host.clone(), root),
            None => PythonEngine::new(self.host.clone(), root),
        }
    }

    pub fn log(&self, source: &str, level: &str, text: &str) {
        self.host.log(source, level, text);
    }

    /// Sends a reply; returns it as sent, for the duplicate cache.
    /// A reply over the protocol's size limit is replaced by a `PayloadTooLarge` error: sent
    /// as it is, it would break the connection (rumqttc and brokers drop oversized packets).
    pub async fn send_reply(&self, target: &NodeName, reply: &Reply) -> (String, Vec<u8>) {
        let topic = self.topics.inbox(target);
        let mut payload = reply.to_bytes();
        if payload.len() > MAX_PAYLOAD {
            let message = format!(
                "the reply is {} bytes; the limit is {MAX_PAYLOAD} (return less, or write a file)",
                payload.len()
            );
            let mut refused = Reply::err(
                &reply.correlation_id,
                ErrorInfo::new("PayloadTooLarge", message),
            );
            refused.sender = reply.sender.clone();
            refused.receiver = reply.receiver.clone();
            refused.message_id = reply.message_id.clone();
            refused.time_stamp = reply.time_stamp;
            payload = refused.to_bytes();
        }
        self.resend(&topic, payload.clone()).await;
        (topic, payload)
    }

    /// Publishes a reply payload (again).
    pub async fn resend(&self, topic: &str, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(topic, payload, QoS::AtLeastOnce, false)
            .await
        {
            tracing::warn!(error = %e, "could not send a reply");
        }
    }

    /// A soft reset: scripts and blink stop, the Python namespace starts afresh, pins go back
    /// to their power-on state. Files stay.
    pub async fn reset(&self) {
        let old = self.engine();
        old.stop_scripts(None).await;
        self.blinker.stop(self.gpio.as_ref());
        for pin in self.gpio.pins() {
            let _ = self.gpio.write(pin, 1);
        }
        *self.engine.lock().unwrap() = Arc::new(self.new_engine());
        self.log("node", "info", "reset");
    }
}

/// Log lines waiting for the broker, at most.
const LOG_QUEUE: usize = 1024;
/// Longest log line text; longer output is cut (a script printing megabytes in one line).
const MAX_LOG_TEXT: usize = 16 * 1024;

fn check_size(len: usize) -> Result<(), String> {
    if len > MAX_PAYLOAD {
        return Err(format!(
            "the message is {len} bytes; the limit is {MAX_PAYLOAD}"
        ));
    }
    Ok(())
}

/// `text` cut to at most `max` bytes, at a character boundary, with a note when cut.
fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [cut: {} bytes in all]", &text[..cut], text.len()).into()
}

/// What Python reaches of the node (see [`Host`]).
struct NodeHost {
    name: NodeName,
    gpio: Arc<dyn Gpio>,
    client: Client,
    runtime: Handle,
    reset_tx: tokio::sync::mpsc::UnboundedSender<()>,
    /// Log lines go through one task so they reach the broker in the order they were written.
    log_tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Python shared with other nodes of this process (`plastic sim`).
    shared_interpreter: bool,
}

impl Host for NodeHost {
    fn node_name(&self) -> &str {
        self.name.as_str()
    }

    fn gpio(&self) -> &dyn Gpio {
        self.gpio.as_ref()
    }

    fn unique_id(&self) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(self.name.as_str().as_bytes())[..6].to_vec()
    }

    fn send(&self, to: &str, msg: Map<String, Value>) -> Result<String, String> {
        let mut request = Request::new(msg);
        let topics = self.client.topics();
        // `all` and `group:<g>` broadcast, as the agent's `plastic.send` does.
        let topic = match to.strip_prefix("group:") {
            _ if to == "all" => topics.all_inbox(),
            Some(group) => topics.group_inbox(group).map_err(|e| e.to_string())?,
            None => topics.inbox(&NodeName::parse(to).map_err(|e| e.to_string())?),
        };
        let id = request.stamp(self.client.name(), to, unix_seconds(SystemTime::now()));
        check_size(request.to_bytes().len())?;
        self.runtime
            .block_on(
                self.client
                    .publish(&topic, request.to_bytes(), QoS::AtLeastOnce, false),
            )
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    fn request(
        &self,
        to: &str,
        msg: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, ErrorInfo> {
        let to = NodeName::parse(to).map_err(|e| ErrorInfo::from(&e))?;
        match self
            .runtime
            .block_on(self.client.request(&to, Request::new(msg), timeout))
        {
            Ok(reply) if reply.ok => Ok(reply.result),
            Ok(reply) => Err(reply
                .error
                .unwrap_or_else(|| ErrorInfo::new("RemoteError", "error reply without details"))),
            Err(plastic_client::ClientError::Timeout { node, seconds }) => Err(ErrorInfo::new(
                "Timeout",
                format!("no reply from {node} within {seconds} s"),
            )),
            Err(e) => Err(ErrorInfo::new("ConnectionError", e.to_string())),
        }
    }

    fn publish_event(&self, topic: &str, data: Value) -> Result<(), String> {
        let topic = self
            .client
            .topics()
            .events_sub(&self.name, topic)
            .map_err(|e| e.to_string())?;
        let payload = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
        check_size(payload.len())?;
        self.runtime
            .block_on(self.client.publish(&topic, payload, QoS::AtMostOnce, false))
            .map_err(|e| e.to_string())
    }

    fn shares_engine_with(&self, to: &str) -> bool {
        to == self.name.as_str() || self.shared_interpreter
    }

    fn log(&self, source: &str, level: &str, text: &str) {
        let text = clip(text, MAX_LOG_TEXT);
        let line = json!({
            "time": unix_seconds(SystemTime::now()),
            "node": self.name.as_str(),
            "source": source,
            "level": level,
            "text": text,
        });
        // Fire and forget: logging must never block a script or the message loop. While the
        // broker is away the queue fills; then lines are dropped rather than piled up.
        if self.log_tx.try_send(line.to_string().into_bytes()).is_err() {
            tracing::debug!("log queue full; a line was dropped");
        }
    }

    fn reset(&self) {
        let _ = self.reset_tx.send(());
    }
}

/// The address this machine uses to reach the broker: a UDP socket "connected" to the broker
/// picks the route without sending anything.
fn local_address(broker: &BrokerUrl) -> Option<String> {
    use std::net::{ToSocketAddrs, UdpSocket};
    let target = (broker.host.as_str(), broker.port)
        .to_socket_addrs()
        .ok()?
        .next()?;
    let socket = UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    socket.connect(target).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

/// Requests handled at once; more are refused with `Busy` (Python work queues behind one
/// interpreter thread anyway, so a deeper queue would only hold memory and stale work).
pub const MAX_IN_FLIGHT: usize = 1024;
/// How long shutdown waits for requests in progress to reply.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running node.
pub struct Node {
    shared: Arc<NodeShared>,
    announced: tokio::sync::watch::Sender<u64>,
    deliveries: tokio::sync::mpsc::UnboundedReceiver<Delivery>,
    resets: tokio::sync::mpsc::UnboundedReceiver<()>,
    presence: Presence,
}

impl Node {
    /// Connects (in the background) and prepares the node; [`Node::run`] serves it.
    pub fn start(config: NodeConfig) -> std::io::Result<Self> {
        let files = Arc::new(FileStore::open(&config.root)?);
        let now = unix_seconds(SystemTime::now());
        let presence = Presence {
            name: config.name.to_string(),
            state: NodeState::Online,
            platform: config.platform.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            address: local_address(&config.broker),
            groups: config.groups.clone(),
            since: now,
            max_payload: None,
            boot: Some(plastic_proto::new_message_id()[..16].to_owned()),
        };
        let mut opts = ClientOptions::new(config.broker.clone(), config.name.clone());
        opts.topics = config.topics.clone();
        opts.ca_file = config.ca_file.clone();
        opts.subscriptions.push(config.topics.all_inbox());
        // Its own presence: a broker may publish the will of a connection that died after the
        // node's new connection said `online` (a session takeover after a blip), leaving the
        // node shown `lost` while it is up. The node sees that and says `online` again.
        opts.subscriptions.push(config.topics.status(&config.name));
        for g in &config.groups {
            opts.subscriptions.push(
                config
                    .topics
                    .group_inbox(g)
                    .map_err(std::io::Error::other)?,
            );
        }
        // A persistent session: QoS 1 requests (and unacknowledged replies) survive a dropped
        // connection; duplicates that redelivery can cause are caught by `recent`.
        opts.clean_session = false;
        opts.last_will = Some((
            config.topics.status(&config.name),
            presence.with_state(NodeState::Lost, now).to_bytes(),
        ));
        let (client, deliveries) = Client::connect(opts);
        let (reset_tx, resets) = tokio::sync::mpsc::unbounded_channel();
        let (log_tx, mut log_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(LOG_QUEUE);
        let log_topic = config.topics.log(&config.name);
        let log_client = client.clone();
        tokio::spawn(async move {
            while let Some(line) = log_rx.recv().await {
                let _ = log_client
                    .publish(&log_topic, line, QoS::AtMostOnce, false)
                    .await;
            }
        });
        let host = Arc::new(NodeHost {
            name: config.name.clone(),
            gpio: config.gpio.clone(),
            client: client.clone(),
            runtime: Handle::current(),
            reset_tx,
            log_tx,
            shared_interpreter: config.interpreter.is_some(),
        });
        let root = files.root().to_path_buf();
        let engine = Arc::new(match &config.interpreter {
            Some(interp) => PythonEngine::on(interp.clone(), host.clone(), root),
            None => PythonEngine::new(host.clone(), root),
        });
        let shared = Arc::new(NodeShared {
            name: config.name,
            platform: config.platform,
            groups: config.groups,
            topics: config.topics,
            gpio: config.gpio,
            files,
            blinker: Blinker::default(),
            started: Instant::now(),
            recent: Mutex::new(Recent::new(now)),
            key: config.key,
            max_skew: config.max_skew,
            started_at: now,
            client,
            engine: Mutex::new(engine),
            shared_interpreter: config.interpreter,
            host,
        });
        Ok(Node {
            shared,
            announced: tokio::sync::watch::channel(0).0,
            deliveries,
            resets,
            presence,
        })
    }

    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// Counts presence announcements: it changes each time the node has (re)connected,
    /// subscribed, and the broker has processed its `online` presence.
    pub fn announcements(&self) -> tokio::sync::watch::Receiver<u64> {
        self.announced.subscribe()
    }

    /// Serves requests until `shutdown` resolves, then says `offline` and disconnects.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let shared = self.shared.clone();
        let client = shared.client.clone();
        let status_topic = shared.topics.status(&shared.name);
        // Announce presence after every (re)connection, once subscriptions are in place.
        let announcer = {
            let client = client.clone();
            let presence = self.presence.clone();
            let topic = status_topic.clone();
            let announced = self.announced.clone();
            tokio::spawn(async move {
                let mut conn = client.connection();
                loop {
                    if conn.borrow_and_update().is_some() {
                        let online =
                            presence.with_state(NodeState::Online, unix_seconds(SystemTime::now()));
                        let _ = client
                            .publish(&topic, online.to_bytes(), QoS::AtLeastOnce, true)
                            .await;
                        // The broker handles one connection's packets in order: once our marker
                        // is back, the retained presence is stored.
                        if client.sync(Duration::from_secs(10)).await.is_ok() {
                            announced.send_modify(|n| *n += 1);
                        }
                    }
                    if conn.changed().await.is_err() {
                        break;
                    }
                }
            })
        };
        tokio::pin!(shutdown);
        let mut handlers = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(()) = self.resets.recv() => {
                    // Stopping stuck scripts can take seconds: not on the message loop.
                    let shared = shared.clone();
                    handlers.spawn(async move { shared.reset().await });
                }
                Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
                delivery = self.deliveries.recv() => {
                    let Some(delivery) = delivery else { break };
                    match delivery.kind {
                        Some(TopicKind::Inbox(_) | TopicKind::AllInbox | TopicKind::GroupInbox(_)) if delivery.retain => {
                            // A retained request would run again on every reconnect.
                            shared.log("node", "error", "refused a message (Retained): requests must not be retained; it was not run");
                        }
                        Some(TopicKind::Inbox(_) | TopicKind::AllInbox | TopicKind::GroupInbox(_)) => {
                            let shared = shared.clone();
                            while handlers.try_join_next().is_some() {}
                            if handlers.len() >= MAX_IN_FLIGHT {
                                // Bounded: a flood gets clear refusals, not unbounded memory.
                                let busy = ErrorInfo::new("Busy", format!("{MAX_IN_FLIGHT} requests are already in progress on this node; try again later"));
                                handlers.spawn(async move { crate::dispatch::refuse(&shared, &delivery.payload, busy).await });
                            } else {
                                handlers.spawn(async move { crate::dispatch::handle(&shared, &delivery.payload).await });
                            }
                        }
                        Some(TopicKind::Status(node)) if node == shared.name.as_str() => {
                            let stale = Presence::parse(&delivery.payload)
                                .is_some_and(|p| p.state != NodeState::Online);
                            if stale && client.connection().borrow().is_some() {
                                tracing::info!("presence says {} while connected; announcing online again", shared.name);
                                let online = self.presence.with_state(NodeState::Online, unix_seconds(SystemTime::now()));
                                let client = client.clone();
                                let topic = status_topic.clone();
                                handlers.spawn(async move {
                                    let _ = client.publish(&topic, online.to_bytes(), QoS::AtLeastOnce, true).await;
                                });
                            }
                        }
                        _ => tracing::debug!(topic = %delivery.topic, "ignored"),
                    }
                }
            }
        }
        announcer.abort();
        shared.engine().stop_scripts(None).await;
        // Let requests in progress finish and reply before saying goodbye, within reason.
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while handlers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "{} requests still running at shutdown were abandoned",
                handlers.len()
            );
        }
        let offline = self
            .presence
            .with_state(NodeState::Offline, unix_seconds(SystemTime::now()));
        client
            .shutdown(Some((status_topic, offline.to_bytes())))
            .await;
    }
}
