//! The node: connection and the message loop (routing deliveries, resets, shutdown).
//!
//! The loop only routes and spawns: each request runs as its own task through the request
//! path ([`crate::request`]); presence is [`crate::presence`]'s; what Python reaches is the
//! host bridge ([`crate::bridge`]); what requests share is [`crate::state`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use plastic_client::{BrokerUrl, Client, ClientOptions, Delivery};
use plastic_proto::{unix_seconds, NodeKey, NodeName, TopicKind, Topics};
use tokio::sync::{mpsc, watch};

use crate::bridge::NodeHost;
use crate::facilities::About;
use crate::files::FileStore;
use crate::gpio::Gpio;
use crate::log_topic::LogTopic;
use crate::outbox::Outbox;
use crate::presence::{self, Herald};
use crate::python::Interpreter;
use crate::recent::Recent;
use crate::request::{self, Arrival};
use crate::state::{Parts, Shared, Signing};

#[derive(Clone)]
pub struct NodeConfig {
    pub broker: BrokerUrl,
    /// More brokers of the same cluster, tried in turn when the connection fails
    /// ([`ClientOptions::alternates`]).
    pub alternates: Vec<BrokerUrl>,
    pub name: NodeName,
    pub topics: Topics,
    pub platform: String,
    pub groups: Vec<String>,
    /// Pools whose tasks this node takes (docs/protocol.md, "Pools").
    pub pools: Vec<String>,
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

/// How long shutdown waits for requests in progress to reply.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a restart waits for scripts and requests to end: what is still running then is
/// ended by the restart itself (a `plastic node` executes itself afresh).
const RESTART_GRACE: Duration = Duration::from_secs(1);

/// Why [`Node::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Ended {
    /// The shutdown future resolved: the node said `offline` and is done.
    Shutdown,
    /// `reset` (or Python's `machine.reset()`): the node said `offline`; its caller starts the
    /// node program again, with a new boot id and presence (docs/protocol.md, `reset`).
    Reset,
}

/// A running node.
pub struct Node {
    shared: Arc<Shared>,
    client: Client,
    herald: Herald,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    resets: mpsc::UnboundedReceiver<()>,
    /// The shared subscriptions of its pools, given up before a clean stop.
    pool_filters: Vec<String>,
}

impl Node {
    /// Connects (in the background) and prepares the node; [`Node::run`] serves it.
    pub fn start(config: NodeConfig) -> std::io::Result<Self> {
        let files = Arc::new(FileStore::open(&config.root)?);
        let now = unix_seconds(SystemTime::now());
        let presence = presence::initial(
            &config.name,
            &config.platform,
            &config.groups,
            &config.pools,
            &config.broker,
            now,
        );
        let status_topic = config.topics.status(&config.name);
        let mut opts = ClientOptions::new(config.broker.clone(), config.name.clone());
        opts.alternates = config.alternates.clone();
        opts.topics = config.topics.clone();
        opts.ca_file = config.ca_file.clone();
        opts.subscriptions.push(config.topics.all_inbox());
        // Its own presence, to see a late will (see `presence`).
        opts.subscriptions.push(status_topic.clone());
        for g in &config.groups {
            opts.subscriptions.push(
                config
                    .topics
                    .group_inbox(g)
                    .map_err(std::io::Error::other)?,
            );
        }
        let pool_filters = config
            .pools
            .iter()
            .map(|p| config.topics.pool_share(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(std::io::Error::other)?;
        opts.subscriptions.extend(pool_filters.iter().cloned());
        // A persistent session: QoS 1 requests (and unacknowledged replies) survive a dropped
        // connection; duplicates that redelivery can cause are caught by `recent`.
        opts.clean_session = false;
        opts.last_will = Some((status_topic.clone(), presence::will(&presence, now)));
        let (client, deliveries) = Client::connect(opts);
        let (reset_tx, resets) = mpsc::unbounded_channel();
        let log = LogTopic::start(
            client.clone(),
            config.topics.log(&config.name),
            config.name.clone(),
        );
        let host = Arc::new(NodeHost::new(
            config.name.clone(),
            config.gpio.clone(),
            client.clone(),
            reset_tx,
            log.clone(),
            config.interpreter.is_some(),
        ));
        let recent = Arc::new(Mutex::new(Recent::new(now)));
        let outbox = Outbox::new(
            config.name.clone(),
            config.topics.clone(),
            client.clone(),
            log.clone(),
            recent.clone(),
        );
        let shared = Arc::new(Shared::new(Parts {
            about: About::new(config.name, config.platform, config.groups),
            gpio: config.gpio,
            files,
            interpreter: config.interpreter,
            host,
            recent,
            signing: Signing {
                key: config.key,
                max_skew: config.max_skew,
                started_at: now,
            },
            outbox,
            log,
        }));
        Ok(Node {
            shared,
            herald: Herald::new(client.clone(), status_topic, presence),
            client,
            deliveries,
            resets,
            pool_filters,
        })
    }

    /// A task from a pool this node is not configured for: its persistent session kept the
    /// subscription of an earlier run (killed, or started with other `--pool`s). The task was
    /// delivered, so it is run and answered; the subscription goes, so no more come.
    fn leave_unless_member(&self, pool: &str) {
        let filter = self.client.topics().pool_share(pool).ok();
        let Some(filter) = filter.filter(|f| !self.pool_filters.contains(f)) else {
            return;
        };
        tracing::warn!(pool, "a task from a pool this node left; unsubscribing");
        let client = self.client.clone();
        tokio::spawn(async move {
            let _ = client.unsubscribe(&filter).await;
        });
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The directory the node's files live in.
    pub fn files_root(&self) -> &std::path::Path {
        self.shared.files.root()
    }

    /// Counts presence announcements: it changes each time the node has (re)connected,
    /// subscribed, and the broker has processed its `online` presence.
    pub fn announcements(&self) -> watch::Receiver<u64> {
        self.herald.announcements()
    }

    /// Serves requests until `shutdown` resolves or a reset is asked for, then says `offline`
    /// and disconnects.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Ended {
        let shared = self.shared.clone();
        let announcer = self.herald.spawn_announcer();
        tokio::pin!(shutdown);
        let mut handlers = tokio::task::JoinSet::new();
        let ended = loop {
            tokio::select! {
                _ = &mut shutdown => break Ended::Shutdown,
                Some(()) = self.resets.recv() => break Ended::Reset,
                Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
                delivery = self.deliveries.recv() => {
                    let Some(delivery) = delivery else { break Ended::Shutdown };
                    match delivery.kind {
                        Some(kind @ (TopicKind::Inbox(_) | TopicKind::AllInbox | TopicKind::GroupInbox(_) | TopicKind::PoolInbox(_))) => {
                            if let TopicKind::PoolInbox(pool) = &kind {
                                self.leave_unless_member(pool);
                            }
                            while handlers.try_join_next().is_some() {}
                            let in_flight = handlers.len();
                            let shared = shared.clone();
                            handlers.spawn(async move {
                                let arrival = Arrival {
                                    payload: &delivery.payload,
                                    retained: delivery.retain,
                                    in_flight,
                                    from_pool: matches!(kind, TopicKind::PoolInbox(_)),
                                };
                                request::handle(&shared, arrival).await
                            });
                        }
                        Some(TopicKind::Status(node)) if node == shared.name().as_str() => {
                            if self.herald.must_reannounce(&delivery.payload) {
                                tracing::info!("presence says {} while connected; announcing online again", shared.name());
                                let herald = self.herald.clone();
                                handlers.spawn(async move { herald.online().await });
                            }
                        }
                        _ => tracing::debug!(topic = %delivery.topic, "ignored"),
                    }
                }
            }
        };
        announcer.abort();
        // A broker keeps a stopped member's persistent session, and Mosquitto keeps handing it
        // its turn of the pool's tasks, which would wait there until it came back: leave the
        // pools before anything else (the hub, too, would hand this still-connected member
        // tasks nobody reads now). A member that dies cannot; a task's `ttl` bounds that wait.
        for filter in &self.pool_filters {
            let _ = self.client.unsubscribe(filter).await;
        }
        let grace = match ended {
            Ended::Shutdown => SHUTDOWN_GRACE,
            Ended::Reset => {
                tracing::info!("{}: resetting", shared.name());
                shared.log("node", "info", "reset");
                shared.before_restart().await;
                RESTART_GRACE
            }
        };
        let _ = tokio::time::timeout(grace, shared.engine().stop_scripts(None)).await;
        // Let requests in progress finish and reply before saying goodbye, within reason.
        let drained = tokio::time::timeout(grace, async {
            while handlers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "{} requests still running at shutdown were abandoned",
                handlers.len()
            );
        }
        self.client.shutdown(Some(self.herald.offline())).await;
        ended
    }
}

/// Replaces this process with a fresh run of the same program and arguments, started from
/// `cwd` (a `plastic node` changes into its files' directory, but relative arguments meant
/// the directory it was started in): what `reset` means for a node that is a process of its
/// own. Every thread goes with the old image, stuck Python included. Returns only on failure.
#[cfg(unix)]
pub fn restart_process(cwd: &std::path::Path) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    // /proc/self/exe still works when the binary was replaced on disk meanwhile.
    let exe = if cfg!(target_os = "linux") {
        PathBuf::from("/proc/self/exe")
    } else {
        match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return e,
        }
    };
    std::process::Command::new(exe)
        .arg0(arg0)
        .args(args)
        .current_dir(cwd)
        .exec()
}
