//! The public face of the client: connection, subscriptions, presence, shutdown. Requests
//! and their waiting are in `request.rs`, uploads in `upload.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use plastic_proto::{NodeName, Presence, Topics};
use rumqttc::{AsyncClient, LastWill, MqttOptions, QoS};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::state::{ConnectFailure, Delivery, Inner};
use crate::{BrokerUrl, ClientError, PresenceEvent};

/// Room for queued requests to rumqttc; publishers wait when it is full.
const REQUEST_CHANNEL_CAPACITY: usize = 4096;
/// Requests to one node in flight at once by default: below Mosquitto's default session queue
/// (`max_queued_messages 1000`), rmqtt's (10,000 in the hub), the node's `Busy` threshold
/// (1,024) and its duplicate memory (4,096 ids), so a client alone never overflows any of them.
pub const DEFAULT_WINDOW: usize = 256;
/// Seconds for TCP, TLS and CONNACK when there are other brokers to try (docs/scaling.md).
const LIST_CONNECT_TIMEOUT_S: u64 = 3;
/// Bigger than any valid message (256 KiB) so that an oversized one reaches the node and is
/// refused with a reply, instead of making rumqttc drop the connection.
const MAX_PACKET: usize = 2 * 1024 * 1024;

/// How to connect. The inbox (`<prefix>/<name>/in`) is always subscribed.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub broker: BrokerUrl,
    /// More brokers of the same cluster (same users, messages routed between them): when the
    /// connection fails, the client tries the next broker of `broker` + `alternates` at once,
    /// and backs off only after every one has failed in a row (docs/scaling.md, "Failover").
    pub alternates: Vec<BrokerUrl>,
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
    /// At most this many requests to one node wait for their replies at once; more wait in
    /// the client, in call order, and are published as replies come back (0: no limit).
    /// Brokers drop QoS 1 messages queued past a per-session limit without telling anyone
    /// (Mosquitto after 1,000 by default, rmqtt the oldest after its `max_mqueue_len`), so
    /// pipelining without a window loses requests and replies: see docs/reliability.md.
    pub window: usize,
}

impl ClientOptions {
    pub fn new(broker: BrokerUrl, name: NodeName) -> Self {
        ClientOptions {
            broker,
            alternates: Vec::new(),
            name,
            topics: Topics::default(),
            subscriptions: Vec::new(),
            last_will: None,
            clean_session: true,
            keep_alive: Duration::from_secs(30),
            presence_buffer: 16,
            ca_file: None,
            keys: Arc::default(),
            window: DEFAULT_WINDOW,
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

/// rumqttc's options for connecting to `broker` as `opts` says.
fn mqtt_options(
    opts: &ClientOptions,
    broker: &BrokerUrl,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> MqttOptions {
    let mut mqtt_opts = MqttOptions::new(opts.name.as_str(), broker.host.clone(), broker.port);
    mqtt_opts
        .set_keep_alive(opts.keep_alive)
        .set_clean_session(opts.clean_session)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_request_channel_capacity(REQUEST_CHANNEL_CAPACITY);
    if let (Some(user), pass) = (&broker.username, &broker.password) {
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
    if let (true, Some(config)) = (broker.tls, tls) {
        mqtt_opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config.clone()),
        ));
    }
    mqtt_opts
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
        let brokers: Vec<BrokerUrl> = std::iter::once(opts.broker.clone())
            .chain(opts.alternates.iter().cloned())
            .collect();
        // The TLS setup is read once (CA file or system roots) for every mqtts:// broker.
        let (tls, tls_error) = if brokers.iter().any(|b| b.tls) {
            match crate::tls::client_config(opts.ca_file.as_deref()) {
                Ok(config) => (Some(config), None),
                Err(e) => (None, Some(e)),
            }
        } else {
            (None, None)
        };
        // One set of MQTT options per broker; the driver swaps them in on failover.
        let per_broker: Vec<MqttOptions> = brokers
            .iter()
            .map(|b| mqtt_options(&opts, b, tls.as_ref()))
            .collect();
        let (mqtt, mut eventloop) =
            AsyncClient::new(per_broker[0].clone(), REQUEST_CHANNEL_CAPACITY);
        let mut net = eventloop.network_options();
        // Nagle's algorithm turns a ~0.1 ms QoS 1 round trip into ~88 ms.
        net.set_tcp_nodelay(true);
        if !opts.alternates.is_empty() {
            // A broker that is down without refusing (a machine switched off) costs this much
            // before the next one is tried: rumqttc's 5 s, shorter with a list.
            net.set_connection_timeout(LIST_CONNECT_TIMEOUT_S);
        }
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
            watched: Mutex::default(),
            connected: watch::channel(None).0,
            keys: opts.keys,
            has_will: opts.last_will.is_some(),
            last_error: watch::channel(None).0,
            closing: false.into(),
            driver: Mutex::new(None),
            brokers,
            current: 0.into(),
            window: opts.window,
            windows: Mutex::default(),
        });
        let (deliveries_tx, deliveries_rx) = mpsc::unbounded_channel();
        if let Some(e) = tls_error {
            // Without a usable TLS setup there is nothing to retry: say so to every waiter.
            inner
                .last_error
                .send_replace(Some(ConnectFailure::Fatal(e)));
            return (Client { inner }, deliveries_rx);
        }
        let driver = tokio::spawn(crate::driver::run(
            inner.clone(),
            eventloop,
            per_broker,
            deliveries_tx,
        ));
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

    /// The broker in use now (or being tried): one of the options' `broker` and `alternates`.
    pub fn broker(&self) -> BrokerUrl {
        self.inner.current_broker().clone()
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
        let broker = crate::broker::list_to_string(&self.inner.brokers);
        let outcome = tokio::time::timeout(timeout, async {
            loop {
                if connected.borrow_and_update().is_some() {
                    return Ok(());
                }
                match &*failures.borrow_and_update() {
                    Some(ConnectFailure::Refused { broker, reason }) => {
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

    /// Unsubscribes (and no longer re-subscribes after a reconnect). Does not wait for the
    /// broker's UNSUBACK: what is sent after it on this connection follows it in order.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.inner
            .subscriptions
            .lock()
            .unwrap()
            .retain(|s| s != filter);
        self.inner.mqtt.unsubscribe(filter).await?;
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

    /// Every presence this client holds now, without asking the broker. Complete for a client
    /// that tracks presence and has synced once ([`Client::nodes`]), as the hub's registry
    /// does: it then follows every change as it happens.
    pub fn known_nodes(&self) -> Vec<Presence> {
        self.inner.presence.lock().unwrap().snapshot()
    }

    /// [`Client::known_nodes`] (in name order), each with the moment its presence first
    /// reached this client (a copy of the same presence keeps the first moment).
    pub fn known_nodes_received(&self) -> Vec<(Presence, std::time::Instant)> {
        self.inner.presence.lock().unwrap().snapshot_received()
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

    /// The presence of just the named nodes (those the broker holds one for), in name order.
    ///
    /// A request to named nodes needs their presence (online? which `boot`? `max_payload`?),
    /// not the whole fleet's: this subscribes to each one's `<prefix>/<node>/status` only,
    /// round-trips a marker, and returns as soon as every named node's presence is in, or
    /// (for names without one) once presence has been quiet as in [`Client::nodes`]. The
    /// subscriptions stay (and are renewed on reconnects): later changes of these nodes arrive
    /// on [`Client::presence_events`] and [`Client::presence_of`], so a request to them
    /// notices a node going `lost` or `offline` and resends after a blip.
    pub async fn nodes_named(
        &self,
        names: &[NodeName],
        timeout: Duration,
    ) -> Result<Vec<Presence>, ClientError> {
        let mut changes = self.presence_events();
        self.inner
            .watched
            .lock()
            .unwrap()
            .extend(names.iter().map(|n| n.to_string()));
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let subscribing = async {
            for name in names {
                self.subscribe(&self.inner.topics.status(name)).await?;
            }
            self.sync(timeout).await
        };
        tokio::time::timeout_at(deadline, subscribing)
            .await
            .map_err(|_| ClientError::Timeout {
                node: "broker".into(),
                seconds: timeout.as_secs_f64(),
            })??;
        let all_known = |c: &Client| names.iter().all(|n| c.presence_of(n.as_str()).is_some());
        let quiet = (started.elapsed() * 3).max(Duration::from_millis(25));
        while !all_known(self) {
            let wait_until = (tokio::time::Instant::now() + quiet).min(deadline);
            match tokio::time::timeout_at(wait_until, changes.recv()).await {
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
                Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
            }
        }
        let table = self.inner.presence.lock().unwrap();
        let mut found: Vec<Presence> = names.iter().filter_map(|n| table.get(n.as_str())).collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found.dedup_by(|a, b| a.name == b.name);
        Ok(found)
    }

    /// [`Client::presence_of`] with the moment that presence first reached this client.
    pub fn presence_received_of(&self, node: &str) -> Option<(Presence, std::time::Instant)> {
        self.inner.presence.lock().unwrap().get_received(node)
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
