//! The public face of the client: requests, broadcasts, presence, subscriptions.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use plastic_proto::{
    unix_seconds, NodeName, NodeState, Presence, Reply, Request, TopicKind, Topics,
};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::presence::PresenceTable;
use crate::{BrokerUrl, ClientError, PresenceEvent};

/// Room for queued requests to rumqttc; publishers wait when it is full.
const REQUEST_CHANNEL_CAPACITY: usize = 4096;
/// Bigger than any valid message (256 KiB) so that an oversized one reaches the node and is
/// refused with a reply, instead of making rumqttc drop the connection.
const MAX_PACKET: usize = 2 * 1024 * 1024;

/// How to connect. The inbox (`<prefix>/<name>/in`) is always subscribed.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub broker: BrokerUrl,
    pub name: NodeName,
    pub topics: Topics,
    /// Subscribed on every connection, besides the inbox.
    pub subscriptions: Vec<String>,
    /// Retained last will: (topic, payload).
    pub last_will: Option<(String, Vec<u8>)>,
    pub clean_session: bool,
    pub keep_alive: Duration,
    /// Presence changes buffered for slow readers of [`Client::presence_events`]. Each slot is
    /// allocated up front, so a node (which never reads them) keeps this small; a registry
    /// following thousands of nodes wants it large.
    pub presence_buffer: usize,
    /// PEM file of the CA that signed the broker's certificate (for `mqtts://`); `None` uses
    /// the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
    /// Keys of nodes that run only signed requests; requests to them are signed.
    pub keys: Arc<crate::KeyRing>,
}

impl ClientOptions {
    pub fn new(broker: BrokerUrl, name: NodeName) -> Self {
        ClientOptions {
            broker,
            name,
            topics: Topics::default(),
            subscriptions: Vec::new(),
            last_will: None,
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            presence_buffer: 16,
            ca_file: None,
            keys: Arc::default(),
        }
    }

    /// A client name owned by `user` on a hub with authentication: `user.` and 8 hex digits.
    pub fn owned_name(user: &str) -> Result<NodeName, ClientError> {
        let id = plastic_proto::new_message_id();
        Ok(NodeName::parse(&format!("{user}.{}", &id[..8]))?)
    }

    /// A client name for a CLI run or a script: `cli-` and 8 random hex digits.
    pub fn ephemeral_name(prefix: &str) -> NodeName {
        let id = plastic_proto::new_message_id();
        NodeName::parse(&format!("{prefix}-{}", &id[..8])).expect("hex suffix keeps the name valid")
    }
}

/// A message that is not a reply this client was waiting for.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub kind: Option<TopicKind>,
    pub payload: bytes::Bytes,
    /// Sent as retained (delivered again on every subscribe).
    pub retain: bool,
}

/// Why the last connection attempt failed.
#[derive(Debug, Clone)]
pub(crate) enum ConnectFailure {
    /// Network trouble: the driver keeps retrying.
    Transient(String),
    /// The broker said no (CONNACK refusal): retried too, but waiters are told at once.
    Refused(String),
    /// Nothing will ever connect (TLS setup).
    Fatal(String),
}

/// A request's topic and bytes, for publishing it again after a reconnect.
struct Resend<'a> {
    topic: &'a str,
    payload: &'a [u8],
    /// Each expected node's `boot` when the request was sent.
    boots: Vec<(String, Option<String>)>,
    /// Sent to a broadcast topic: copies go to each node's inbox instead.
    broadcast: bool,
}

impl Resend<'_> {
    /// Publishes the request again to every node still waited for that provably runs the same
    /// program start as when the request went out (fresh presence, `online`, same `boot`): its
    /// duplicate memory then catches the copy. A node that restarted, or whose presence this
    /// connection has not seen yet, or that does not say, gets nothing: it might run it twice.
    /// A broadcast is resent to each such node's own inbox, never to the broadcast topic.
    async fn publish(
        &self,
        client: &Client,
        waiting: &std::collections::BTreeSet<String>,
    ) -> Result<(), ClientError> {
        if client.inner.connected.borrow().is_none() {
            return Ok(());
        }
        let same_boot = |node: &str, boot: &Option<String>| {
            let now = client.inner.presence.lock().unwrap().get_fresh(node);
            boot.is_some() && now.is_some_and(|p| p.state == NodeState::Online && p.boot == *boot)
        };
        let pending = self.boots.iter().filter(|(n, _)| waiting.contains(n));
        if self.broadcast {
            for (node, boot) in pending {
                if let (true, Ok(name)) = (same_boot(node, boot), NodeName::parse(node)) {
                    let topic = client.inner.topics.inbox(&name);
                    client
                        .publish(&topic, self.payload.to_vec(), QoS::AtLeastOnce, false)
                        .await?;
                }
            }
        } else if pending.clone().count() > 0 && pending.clone().all(|(n, b)| same_boot(n, b)) {
            client
                .publish(self.topic, self.payload.to_vec(), QoS::AtLeastOnce, false)
                .await?;
        }
        Ok(())
    }

    fn booted_since(&self, node: &str, now: Option<&str>) -> bool {
        self.boots
            .iter()
            .any(|(n, b)| n == node && b.is_some() && now.is_some() && b.as_deref() != now)
    }
}

/// After a reconnect, a request is sent again at these growing intervals until answered.
const RESEND_FIRST_GAP: Duration = Duration::from_millis(500);
const RESEND_MAX_GAP: Duration = Duration::from_secs(4);

/// How long a request waits for a `lost` node to come back before ending with `NodeLost`.
pub const LOST_GRACE: Duration = Duration::from_secs(3);

pub(crate) struct Inner {
    pub(crate) mqtt: AsyncClient,
    pub(crate) name: NodeName,
    pub(crate) topics: Topics,
    /// Waiting requests by message id. An entry may receive several replies (broadcasts).
    pub(crate) pending: Mutex<HashMap<String, mpsc::UnboundedSender<Reply>>>,
    /// Waiters for `sync` markers sent to our own inbox.
    pub(crate) markers: Mutex<HashMap<String, oneshot::Sender<()>>>,
    /// Every filter subscribed so far; re-sent on each reconnect.
    pub(crate) subscriptions: Mutex<Vec<String>>,
    /// Serialises "queue a SUBACK waiter, then send the SUBSCRIBE" so waiters match packets.
    pub(crate) subscribe_lock: tokio::sync::Mutex<()>,
    pub(crate) suback_queue: Mutex<VecDeque<oneshot::Sender<()>>>,
    pub(crate) suback_by_pkid: Mutex<HashMap<u16, oneshot::Sender<()>>>,
    pub(crate) presence: Mutex<PresenceTable>,
    pub(crate) presence_tx: broadcast::Sender<PresenceEvent>,
    pub(crate) tracking_presence: std::sync::atomic::AtomicBool,
    /// `Some(n)`: connected and subscribed, for the n-th time. `None`: not connected.
    pub(crate) connected: watch::Sender<Option<u64>>,
    pub(crate) last_error: watch::Sender<Option<ConnectFailure>>,
    pub(crate) keys: Arc<crate::KeyRing>,
    /// A last will is set: closing must not lose the DISCONNECT (see the driver).
    pub(crate) has_will: bool,
    pub(crate) closing: std::sync::atomic::AtomicBool,
    pub(crate) driver: Mutex<Option<JoinHandle<()>>>,
    pub(crate) broker: BrokerUrl,
}

/// A connection to the broker. Cheap to clone; all clones share the connection.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Starts connecting in the background and returns at once. Messages that are not awaited
    /// replies arrive on the returned receiver. Use [`Client::wait_connected`] to know when the
    /// connection is up and subscribed.
    pub fn connect(opts: ClientOptions) -> (Client, mpsc::UnboundedReceiver<Delivery>) {
        let mut mqtt_opts = MqttOptions::new(
            opts.name.as_str(),
            opts.broker.host.clone(),
            opts.broker.port,
        );
        mqtt_opts
            .set_keep_alive(opts.keep_alive)
            .set_clean_session(opts.clean_session)
            .set_max_packet_size(MAX_PACKET, MAX_PACKET)
            .set_request_channel_capacity(REQUEST_CHANNEL_CAPACITY);
        if let (Some(user), pass) = (&opts.broker.username, &opts.broker.password) {
            mqtt_opts.set_credentials(user.clone(), pass.clone().unwrap_or_default());
        }
        if let Some((topic, payload)) = &opts.last_will {
            mqtt_opts.set_last_will(LastWill::new(
                topic.clone(),
                payload.clone(),
                QoS::AtLeastOnce,
                true,
            ));
        }
        let tls_error = if opts.broker.tls {
            match crate::tls::client_config(opts.ca_file.as_deref()) {
                Ok(config) => {
                    mqtt_opts.set_transport(rumqttc::Transport::tls_with_config(
                        rumqttc::TlsConfiguration::Rustls(config),
                    ));
                    None
                }
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let (mqtt, mut eventloop) = AsyncClient::new(mqtt_opts, REQUEST_CHANNEL_CAPACITY);
        let mut net = eventloop.network_options();
        // Nagle's algorithm turns a ~0.1 ms QoS 1 round trip into ~88 ms.
        net.set_tcp_nodelay(true);
        eventloop.set_network_options(net);

        let mut subscriptions = vec![opts.topics.inbox(&opts.name)];
        subscriptions.extend(opts.subscriptions.iter().cloned());
        let (presence_tx, _) = broadcast::channel(opts.presence_buffer.max(1));
        let inner = Arc::new(Inner {
            mqtt,
            name: opts.name,
            topics: opts.topics,
            pending: Mutex::default(),
            markers: Mutex::default(),
            subscriptions: Mutex::new(subscriptions),
            subscribe_lock: tokio::sync::Mutex::new(()),
            suback_queue: Mutex::default(),
            suback_by_pkid: Mutex::default(),
            presence: Mutex::default(),
            presence_tx,
            tracking_presence: false.into(),
            connected: watch::channel(None).0,
            keys: opts.keys,
            has_will: opts.last_will.is_some(),
            last_error: watch::channel(None).0,
            closing: false.into(),
            driver: Mutex::new(None),
            broker: opts.broker,
        });
        let (deliveries_tx, deliveries_rx) = mpsc::unbounded_channel();
        if let Some(e) = tls_error {
            // Without a usable TLS setup there is nothing to retry: say so to every waiter.
            inner
                .last_error
                .send_replace(Some(ConnectFailure::Fatal(e)));
            return (Client { inner }, deliveries_rx);
        }
        let driver = tokio::spawn(crate::driver::run(inner.clone(), eventloop, deliveries_tx));
        *inner.driver.lock().unwrap() = Some(driver);
        (Client { inner }, deliveries_rx)
    }

    /// True when requests to any of `nodes` would be signed.
    pub fn signs_for_any(&self, nodes: &[NodeName]) -> Result<bool, ClientError> {
        for node in nodes {
            if self
                .inner
                .keys
                .get(node)
                .map_err(ClientError::Key)?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    pub fn name(&self) -> &NodeName {
        &self.inner.name
    }

    pub fn topics(&self) -> &Topics {
        &self.inner.topics
    }

    pub fn broker(&self) -> &BrokerUrl {
        &self.inner.broker
    }

    /// Connection state: `Some(n)` after the n-th successful (re)connection and subscription.
    pub fn connection(&self) -> watch::Receiver<Option<u64>> {
        self.inner.connected.subscribe()
    }

    /// Waits until connected and subscribed, or fails after `timeout`. A refusal by the broker
    /// (bad credentials, not authorised) or a TLS setup error fails at once: retrying would
    /// only repeat it.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ClientError> {
        let mut connected = self.connection();
        let mut failures = self.inner.last_error.subscribe();
        let broker = self.inner.broker.to_string();
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                if connected.borrow_and_update().is_some() {
                    return Ok(());
                }
                match &*failures.borrow_and_update() {
                    Some(ConnectFailure::Refused(reason)) => {
                        return Err(ClientError::Refused {
                            broker: broker.clone(),
                            reason: reason.clone(),
                        })
                    }
                    Some(ConnectFailure::Fatal(e)) => return Err(ClientError::Tls(e.clone())),
                    _ => {}
                }
                tokio::select! {
                    changed = connected.changed() => if changed.is_err() { return Err(ClientError::Closed) },
                    changed = failures.changed() => if changed.is_err() { return Err(ClientError::Closed) },
                }
            }
        })
        .await;
        match outcome {
            Ok(result) => result,
            Err(_) => Err(ClientError::Unreachable {
                broker,
                seconds: timeout.as_secs_f64(),
                last_error: match &*self.inner.last_error.borrow() {
                    Some(ConnectFailure::Transient(e)) => Some(e.clone()),
                    _ => None,
                },
            }),
        }
    }

    /// Subscribes (QoS 1) and waits for the broker's SUBACK. The filter is re-subscribed after
    /// every reconnect.
    pub async fn subscribe(&self, filter: &str) -> Result<(), ClientError> {
        {
            let mut subs = self.inner.subscriptions.lock().unwrap();
            if !subs.iter().any(|s| s == filter) {
                subs.push(filter.to_owned());
            }
        }
        let acked = {
            let _order = self.inner.subscribe_lock.lock().await;
            let (tx, rx) = oneshot::channel();
            self.inner.suback_queue.lock().unwrap().push_back(tx);
            self.inner.mqtt.subscribe(filter, QoS::AtLeastOnce).await?;
            rx
        };
        if acked.await.is_err() {
            // The connection dropped before the SUBACK; the reconnect re-subscribes everything.
            self.wait_connected(Duration::from_secs(3600)).await?;
        }
        Ok(())
    }

    /// Publishes raw bytes.
    pub async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), ClientError> {
        self.inner.mqtt.publish(topic, qos, retain, payload).await?;
        Ok(())
    }

    /// Sends a request without waiting for anything (`need_result` is left as the caller set
    /// it), signed when the client has the target's key. Returns the message id.
    pub async fn send(&self, target: &NodeName, request: Request) -> Result<String, ClientError> {
        let (id, topic, payload) = self.prepare(target, request)?;
        self.publish(&topic, payload, QoS::AtLeastOnce, false)
            .await?;
        Ok(id)
    }

    /// Stamps and (with the target's key) signs a request: its id, topic and payload.
    fn prepare(
        &self,
        target: &NodeName,
        request: Request,
    ) -> Result<(String, String, Vec<u8>), ClientError> {
        let mut request = request;
        let id = request.stamp(&self.inner.name, target.as_str(), now());
        let mut payload = request.to_bytes();
        if let Some(key) = self.inner.keys.get(target).map_err(ClientError::Key)? {
            payload = key.sign(&payload);
        }
        Ok((id, self.inner.topics.inbox(target), payload))
    }

    /// Sends a request with `need_result` set and waits for its one reply. An error reply from
    /// the node is `Ok(reply)` with `reply.ok == false`; `Err` means no reply came.
    pub async fn request(
        &self,
        target: &NodeName,
        mut request: Request,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        request.set_need_result(true);
        let boot = self.presence_of(target.as_str()).and_then(|p| p.boot);
        let (id, topic, payload) = self.prepare(target, request)?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _pending = PendingGuard::new(&self.inner, &id, tx);
        self.publish(&topic, payload.clone(), QoS::AtLeastOnce, false)
            .await?;
        let resend = Resend {
            topic: &topic,
            payload: &payload,
            boots: vec![(target.to_string(), boot)],
            broadcast: false,
        };
        let mut outcomes = self
            .collect(&mut rx, std::slice::from_ref(target), timeout, Some(resend))
            .await?;
        outcomes
            .pop()
            .map(|(_, outcome)| outcome)
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Publishes one request to a broadcast `topic` (or any topic) and collects replies until
    /// every node in `expected` answered or `timeout` passed. Replies from nodes not expected
    /// are collected too. Nodes that did not answer get `Err(Timeout)`.
    pub async fn request_many(
        &self,
        topic: &str,
        receiver: &str,
        mut request: Request,
        expected: &[NodeName],
        timeout: Duration,
    ) -> Result<Vec<(String, Result<Reply, ClientError>)>, ClientError> {
        request.set_need_result(true);
        let id = request.stamp(&self.inner.name, receiver, now());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _pending = PendingGuard::new(&self.inner, &id, tx);
        let payload = request.to_bytes();
        self.publish(topic, payload.clone(), QoS::AtLeastOnce, false)
            .await?;
        let resend = Resend {
            topic,
            payload: &payload,
            boots: expected
                .iter()
                .map(|n| {
                    let boot = self.presence_of(n.as_str()).and_then(|p| p.boot);
                    (n.to_string(), boot)
                })
                .collect(),
            broadcast: true,
        };
        self.collect(&mut rx, expected, timeout, Some(resend)).await
    }

    /// Gathers replies until every node in `expected` answered, went offline or stayed lost
    /// (when presence is tracked: a definite outcome instead of a timeout), or `timeout`.
    ///
    /// A node that goes `lost` gets [`LOST_GRACE`] to come back: a Wi-Fi blip or a torn TCP
    /// connection ends with the node reconnecting to its persistent session, which still holds
    /// the request, so its reply is worth waiting for. `offline` (a clean shutdown, after
    /// finishing what it had) ends the wait at once.
    ///
    /// With `resend`, the request is published again, same message id, when this client
    /// reconnects (then again after 0.5, 1, 2, 4, 4... s until answered) and when a node it
    /// waits for comes back online: a broker that restarted has lost its queues, and the
    /// node's duplicate detection makes every copy harmless (it runs once; a copy of a
    /// finished request gets the first reply again). Only while the nodes' presence shows the
    /// same `boot` as when the request went out: a node that restarted has forgotten what it
    /// ran, so its request ends as "lost (it restarted)" instead.
    async fn collect(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Reply>,
        expected: &[NodeName],
        timeout: Duration,
        resend: Option<Resend<'_>>,
    ) -> Result<Vec<(String, Result<Reply, ClientError>)>, ClientError> {
        let mut presence = self.presence_events();
        let mut connection = self.connection();
        connection.borrow_and_update();
        let mut retry_at: Option<tokio::time::Instant> = None;
        let mut retry_gap = RESEND_FIRST_GAP;
        let tracking = self
            .inner
            .tracking_presence
            .load(std::sync::atomic::Ordering::SeqCst);
        let mut waiting: std::collections::BTreeSet<String> =
            expected.iter().map(|n| n.to_string()).collect();
        let mut lost: std::collections::BTreeMap<String, tokio::time::Instant> =
            std::collections::BTreeMap::new();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while !waiting.is_empty() {
            let grace_end = lost.values().min().copied();
            tokio::select! {
                reply = rx.recv() => match reply {
                    Some(reply) => {
                        // One node asked: the correlation id says whose reply this is, whatever
                        // `sender` says (the protocol does not require it on replies).
                        let who = match expected {
                            [only] => only.to_string(),
                            _ => reply.sender.clone().unwrap_or_default(),
                        };
                        lost.remove(&who);
                        if waiting.remove(&who) || !expected.iter().any(|n| n.as_str() == who) {
                            out.push((who, Ok(reply)));
                        }
                    }
                    None => return Err(ClientError::Closed),
                },
                event = presence.recv(), if tracking => {
                    if let Ok(event) = event {
                        let p = event.current;
                        match p.state {
                            NodeState::Online => {
                                lost.remove(&p.name);
                                let restarted = resend.as_ref().is_some_and(|r| r.booted_since(&p.name, p.boot.as_deref()));
                                if restarted && waiting.remove(&p.name) {
                                    out.push((p.name.clone(), Err(ClientError::NodeLost { node: p.name, state: "lost (it restarted)".into() })));
                                } else if waiting.contains(&p.name) {
                                    if let Some(r) = &resend {
                                        r.publish(self, &waiting).await?;
                                    }
                                }
                            }
                            NodeState::Lost if waiting.contains(&p.name) => {
                                lost.entry(p.name.clone()).or_insert_with(|| tokio::time::Instant::now() + LOST_GRACE);
                            }
                            NodeState::Offline if waiting.remove(&p.name) => {
                                lost.remove(&p.name);
                                out.push((p.name.clone(), Err(ClientError::NodeLost { node: p.name, state: "offline".into() })));
                            }
                            _ => {}
                        }
                    }
                }
                _ = tokio::time::sleep_until(grace_end.unwrap_or(deadline)), if grace_end.is_some_and(|g| g < deadline) => {
                    let now = tokio::time::Instant::now();
                    let gone: Vec<String> = lost.iter().filter(|(_, t)| **t <= now).map(|(n, _)| n.clone()).collect();
                    for node in gone {
                        lost.remove(&node);
                        if waiting.remove(&node) {
                            out.push((node.clone(), Err(ClientError::NodeLost { node, state: "lost".into() })));
                        }
                    }
                }
                changed = connection.changed(), if resend.is_some() => {
                    if changed.is_err() {
                        return Err(ClientError::Closed);
                    }
                    let reconnected = connection.borrow_and_update().is_some();
                    if let (true, Some(r)) = (reconnected, &resend) {
                        r.publish(self, &waiting).await?;
                        // The nodes may not have re-subscribed to a restarted broker yet: try
                        // again, less and less often, until the reply comes.
                        retry_gap = RESEND_FIRST_GAP;
                        retry_at = Some(tokio::time::Instant::now() + retry_gap);
                    }
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or(deadline)), if retry_at.is_some_and(|t| t < deadline) => {
                    if let Some(r) = &resend {
                        r.publish(self, &waiting).await?;
                    }
                    retry_gap = (retry_gap * 2).min(RESEND_MAX_GAP);
                    retry_at = Some(tokio::time::Instant::now() + retry_gap);
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        for node in waiting {
            let seconds = timeout.as_secs_f64();
            out.push((node.clone(), Err(ClientError::Timeout { node, seconds })));
        }
        Ok(out)
    }

    /// Round-trips a marker through our own inbox. Everything the broker queued for us before
    /// the marker (retained presence after a subscribe, in particular) has arrived when this
    /// returns.
    pub async fn sync(&self, timeout: Duration) -> Result<(), ClientError> {
        let id = plastic_proto::new_message_id();
        let (tx, rx) = oneshot::channel();
        self.inner.markers.lock().unwrap().insert(id.clone(), tx);
        let payload = serde_json::json!({"type": "sync", "marker": id})
            .to_string()
            .into_bytes();
        let result = async {
            self.publish(
                &self.inner.topics.inbox(&self.inner.name),
                payload,
                QoS::AtLeastOnce,
                false,
            )
            .await?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(ClientError::Closed),
                Err(_) => Err(ClientError::Timeout {
                    node: "broker".into(),
                    seconds: timeout.as_secs_f64(),
                }),
            }
        }
        .await;
        self.inner.markers.lock().unwrap().remove(&id);
        result
    }

    /// Starts following presence (`<prefix>/+/status`); idempotent.
    pub async fn track_presence(&self) -> Result<(), ClientError> {
        if !self
            .inner
            .tracking_presence
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            self.subscribe(&self.inner.topics.all_status()).await?;
        }
        Ok(())
    }

    /// Every node the broker holds a presence for, in name order.
    ///
    /// MQTT does not say when a subscriber has received all retained messages. Mosquitto sends
    /// them before the SUBACK; rmqtt sends them from a spawned task, so they may arrive after a
    /// marker sent once the SUBACK is in. So after the marker round trip, this keeps listening
    /// until presence has been quiet for a few round-trip times (at least 25 ms).
    pub async fn nodes(&self, timeout: Duration) -> Result<Vec<Presence>, ClientError> {
        let mut changes = self.presence_events();
        self.track_presence().await?;
        let started = tokio::time::Instant::now();
        self.sync(timeout).await?;
        let quiet = (started.elapsed() * 3).max(Duration::from_millis(25));
        let deadline = started + timeout;
        loop {
            let wait_until = (tokio::time::Instant::now() + quiet).min(deadline);
            match tokio::time::timeout_at(wait_until, changes.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        Ok(self.inner.presence.lock().unwrap().snapshot())
    }

    /// The last presence seen for `node`, if presence is tracked and the node is known.
    pub fn presence_of(&self, node: &str) -> Option<Presence> {
        self.inner.presence.lock().unwrap().get(node)
    }

    /// Presence changes from now on (requires [`Client::track_presence`]).
    pub fn presence_events(&self) -> broadcast::Receiver<PresenceEvent> {
        self.inner.presence_tx.subscribe()
    }

    /// Publishes a final message (a node's `offline` presence), disconnects cleanly and waits
    /// for the connection to close.
    pub async fn shutdown(&self, last: Option<(String, Vec<u8>)>) {
        if let Some((topic, payload)) = last {
            let _ = self.publish(&topic, payload, QoS::AtLeastOnce, true).await;
        }
        self.inner
            .closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.inner.mqtt.disconnect().await;
        let driver = self.inner.driver.lock().unwrap().take();
        if let Some(driver) = driver {
            if tokio::time::timeout(Duration::from_secs(5), driver)
                .await
                .is_err()
            {
                tracing::warn!("connection did not close within 5 s");
            }
        }
    }
}

fn now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Removes a pending request's entry however its wait ends (reply, timeout, cancellation).
struct PendingGuard<'a> {
    inner: &'a Inner,
    id: String,
}

impl<'a> PendingGuard<'a> {
    fn new(inner: &'a Inner, id: &str, tx: mpsc::UnboundedSender<Reply>) -> Self {
        inner.pending.lock().unwrap().insert(id.to_owned(), tx);
        PendingGuard {
            inner,
            id: id.to_owned(),
        }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.inner.pending.lock().unwrap().remove(&self.id);
    }
}
