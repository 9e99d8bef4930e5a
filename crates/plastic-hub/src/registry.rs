//! The registry: the hub's view of the fleet, from retained presence, printed as it changes;
//! and the keeper of every node's recent log (`tails.rs`), republished retained on
//! `<prefix>/<node>/log/recent` for `plastic logs`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use plastic_client::{BrokerUrl, Client, ClientError, ClientOptions, Delivery, PresenceEvent};
use plastic_proto::{NodeState, Presence, TopicKind, Topics};
use rumqttc::QoS;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::tails::Tails;

/// How often changed tails are republished: a chatty script costs one retained publish per
/// node per second, whatever its rate.
const TAIL_PERIOD: Duration = Duration::from_secs(1);

/// Log lines and events kept for the live stream's slowest reader (it loses older ones).
pub const ACTIVITY_KEPT: usize = 256;
/// A log line or event bigger than this is shown live as a note of its size only.
/// (As JSON in memory a body takes up to ~16 times its text: 4 KiB keeps a stalled reader
/// under ~16 MiB.)
pub const ACTIVITY_BODY_MAX: usize = 4 * 1024;

pub struct Registry {
    client: Client,
    activity: tokio::sync::broadcast::Sender<Arc<Activity>>,
    tails: Arc<Mutex<Tails>>,
}

/// A log line or event a node published, as the registry saw it (for the web's live stream).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Activity {
    pub node: String,
    /// `log` or `event`.
    pub kind: &'static str,
    /// An event's sub-topic (`events/<sub>`), empty for plain events and log lines.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sub: String,
    pub body: serde_json::Value,
}

impl Registry {
    /// Connects to the first of `brokers` (not empty), failing over to the others as every
    /// client does (`ClientOptions::alternates`).
    pub async fn connect(
        mut brokers: Vec<BrokerUrl>,
        topics: Topics,
        ca_file: Option<std::path::PathBuf>,
    ) -> Result<Self, ClientError> {
        // `hub.xxxxxxxx`: a name the hub's own user owns when the broker checks names.
        let mut opts = ClientOptions::new(
            brokers.remove(0),
            ClientOptions::owned_name(crate::users::HUB_USER)?,
        );
        opts.alternates = brokers;
        opts.topics = topics;
        opts.ca_file = ca_file;
        opts.presence_buffer = 16 * 1024;
        opts.subscriptions = vec![opts.topics.all_logs(), opts.topics.all_events()];
        let (client, deliveries) = Client::connect(opts);
        client.wait_connected(Duration::from_secs(10)).await?;
        client.track_presence().await?;
        let (activity, _) = tokio::sync::broadcast::channel(ACTIVITY_KEPT);
        let tails = Arc::new(Mutex::new(Tails::default()));
        keep_tails(client.clone(), deliveries, activity.clone(), tails.clone());
        Ok(Registry {
            client,
            activity,
            tails,
        })
    }

    pub async fn nodes(&self) -> Result<Vec<Presence>, ClientError> {
        self.client.nodes(Duration::from_secs(5)).await
    }

    pub fn events(&self) -> tokio::sync::broadcast::Receiver<PresenceEvent> {
        self.client.presence_events()
    }

    /// Every node's recent log lines and events, as `plastic logs` reads them.
    pub fn tails(&self) -> Arc<Mutex<Tails>> {
        self.tails.clone()
    }

    /// Every log line and event from now on (a reader that lags loses the oldest).
    pub fn activity_sender(&self) -> tokio::sync::broadcast::Sender<Arc<Activity>> {
        self.activity.clone()
    }

    /// The hub's own connection (it publishes the policy's refusal replies).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn shutdown(&self) {
        self.client.shutdown(None).await;
    }
}

/// Feeds every log line and event to [`Tails`] and republishes the changed tails once a
/// second, until the connection ends.
fn keep_tails(
    client: Client,
    mut deliveries: UnboundedReceiver<Delivery>,
    activity: tokio::sync::broadcast::Sender<Arc<Activity>>,
    tails: Arc<Mutex<Tails>>,
) {
    let publisher = {
        let tails = tails.clone();
        let client = client.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TAIL_PERIOD);
            loop {
                tick.tick().await;
                let changed = tails.lock().unwrap().take_changed();
                for (node, payload) in changed {
                    let topic = client.topics().log_recent(&node);
                    if let Err(e) = client
                        .publish(&topic, payload, QoS::AtLeastOnce, true)
                        .await
                    {
                        tracing::debug!(%e, "could not publish a log tail; again next time");
                        tails.lock().unwrap().retry(node);
                    }
                }
            }
        })
    };
    tokio::spawn(async move {
        while let Some(d) = deliveries.recv().await {
            if d.retain {
                continue; // (a broker that keeps logs retained: not news)
            }
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&d.payload) else {
                continue;
            };
            let now = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            let seen = match d.kind {
                Some(TopicKind::Log(node)) if body.is_object() => (node, "log", String::new()),
                Some(TopicKind::Events(node)) => (node, "event", String::new()),
                Some(TopicKind::EventsSub(node, sub)) => (node, "event", sub),
                _ => continue,
            };
            let (node, kind, sub) = seen;
            // Bounded: the channel keeps its last ACTIVITY_KEPT items for a slow reader, so
            // a body over ACTIVITY_BODY_MAX is passed on as a note of its size.
            if activity.receiver_count() > 0 {
                let size = d.payload.len();
                let body = if size > ACTIVITY_BODY_MAX {
                    serde_json::json!({"text": format!("({size} bytes, not shown live; see plastic logs)")})
                } else {
                    body.clone()
                };
                let _ = activity.send(Arc::new(Activity {
                    node: node.clone(),
                    kind,
                    sub: sub.clone(),
                    body,
                }));
            }
            let mut tails = tails.lock().unwrap();
            if kind == "log" {
                tails.push(&node, body);
            } else {
                tails.push_event(&node, &sub, body, now);
            }
        }
        publisher.abort();
    });
}

/// One line for the hub's console.
pub fn describe_change(event: &PresenceEvent) -> String {
    describe(&event.current)
}

/// One node's presence as the hub console prints it, whether listed at start or changed since.
pub fn describe(p: &Presence) -> String {
    let verb = match p.state {
        NodeState::Online => "online",
        NodeState::Offline => "offline",
        NodeState::Lost => "lost (connection dropped)",
    };
    let groups = if p.groups.is_empty() {
        String::new()
    } else {
        format!(" groups={}", p.groups.join(","))
    };
    format!(
        "node {} {verb} [{} {}{groups}]",
        p.name, p.platform, p.version
    )
}
