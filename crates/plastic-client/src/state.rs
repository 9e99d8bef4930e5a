//! State shared by the public [`Client`](crate::Client) and the driver task that owns rumqttc's
//! event loop. Both depend on this module and not on each other: the driver routes into it,
//! the client reads and waits on it.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use plastic_proto::{NodeName, Reply, TopicKind, Topics};
use rumqttc::AsyncClient;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::presence::PresenceTable;
use crate::{BrokerUrl, PresenceEvent};

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
    Refused { broker: String, reason: String },
    /// Nothing will ever connect (TLS setup).
    Fatal(String),
}

pub(crate) struct Inner {
    pub(crate) mqtt: AsyncClient,
    pub(crate) name: NodeName,
    pub(crate) topics: Topics,
    /// Waiting requests by message id. An entry may receive several replies (broadcasts).
    pub(crate) pending: Mutex<HashMap<String, mpsc::UnboundedSender<Arrived>>>,
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
    /// Following every node's presence (`<prefix>/+/status`).
    pub(crate) tracking_presence: AtomicBool,
    /// Nodes whose presence is followed one by one (`<prefix>/<node>/status`), for requests to
    /// named nodes that need not know the whole fleet.
    pub(crate) watched: Mutex<BTreeSet<String>>,
    /// `Some(n)`: connected and subscribed, for the n-th time. `None`: not connected.
    pub(crate) connected: watch::Sender<Option<u64>>,
    pub(crate) last_error: watch::Sender<Option<ConnectFailure>>,
    pub(crate) keys: Arc<crate::KeyRing>,
    /// A last will is set: closing must not lose the DISCONNECT (see the driver).
    pub(crate) has_will: bool,
    pub(crate) closing: AtomicBool,
    pub(crate) driver: Mutex<Option<JoinHandle<()>>>,
    /// The options' `broker` then its `alternates`; `current` indexes the one in use.
    pub(crate) brokers: Vec<BrokerUrl>,
    pub(crate) current: AtomicUsize,
    /// Requests to one node waiting for their replies at once (0: no limit); see
    /// [`ClientOptions::window`](crate::ClientOptions::window).
    pub(crate) window: usize,
    /// Each node's window: permits for requests in flight.
    pub(crate) windows: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Inner {
    /// The broker connected (or being tried) now.
    pub(crate) fn current_broker(&self) -> &BrokerUrl {
        &self.brokers[self.current.load(Ordering::Relaxed) % self.brokers.len()]
    }

    /// The window of requests in flight to `node`, created on first use: this client's
    /// window, or the node's announced one if smaller (a board remembers only a few ids).
    pub(crate) fn window_of(&self, node: &str) -> Arc<Semaphore> {
        let announced = self
            .presence
            .lock()
            .unwrap()
            .get(node)
            .and_then(|p| p.window);
        self.windows
            .lock()
            .unwrap()
            .entry(node.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(window_size(self.window, announced))))
            .clone()
    }

    /// True when a presence message for `node` belongs in the table (rather than being handed
    /// to the owner as a delivery, as a node's own status is).
    pub(crate) fn follows_presence_of(&self, node: &str) -> bool {
        self.tracking_presence
            .load(std::sync::atomic::Ordering::Relaxed)
            || self.watched.lock().unwrap().contains(node)
    }
}

/// What arrives for a pending request in the client's inbox.
#[derive(Debug)]
pub(crate) enum Arrived {
    Reply(Box<Reply>),
    /// A pool member took it (docs/protocol.md, "Pools"): the member's name.
    Taken(String),
}

/// Removes a pending request's entry however its wait ends (reply, timeout, cancellation).
pub(crate) struct PendingGuard<'a> {
    inner: &'a Inner,
    id: String,
}

impl<'a> PendingGuard<'a> {
    pub(crate) fn new(inner: &'a Inner, id: &str, tx: mpsc::UnboundedSender<Arrived>) -> Self {
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

/// A node's window: this client's, or the node's announced one if smaller (at least 1).
pub(crate) fn window_size(ours: usize, announced: Option<u64>) -> usize {
    match announced {
        Some(n) => ours.min(usize::try_from(n).unwrap_or(usize::MAX)).max(1),
        None => ours,
    }
}

#[cfg(test)]
mod tests {
    use super::window_size;

    #[test]
    fn a_nodes_announced_window_caps_ours() {
        assert_eq!(window_size(256, None), 256);
        assert_eq!(window_size(256, Some(8)), 8, "a board remembering 8 ids");
        assert_eq!(window_size(256, Some(4096)), 256);
        assert_eq!(window_size(256, Some(0)), 1, "never none at all");
    }
}
