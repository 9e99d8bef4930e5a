//! TARGET to nodes: parsed and resolved by `plastic_client::target`, the CLI's rules (a node
//! name, a comma list, a glob (`esp-*`), `group:NAME`, `pool:NAME` or `all`). `all` and
//! `group:` go out as one broadcast publish unless a targeted node has a key (signed requests
//! are for one node); `pool:` as one publish to the pool, which one member takes.
//!
//! Unlike a CLI run, a Python client lives long: it follows every node's presence from the
//! start (`Fleet`, fed by the client's presence events), so resolving a target costs no round
//! trip once the fleet is known; only names not seen yet are asked for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use plastic_client::{resolve_in, Client};
pub use plastic_client::{Resolved, Target as Spec};
use plastic_proto::{NodeName, NodeState, Presence};
use tokio::sync::broadcast::error::RecvError;

/// The fleet as this client last heard it: every node's latest presence.
#[derive(Default)]
pub struct Fleet {
    nodes: Mutex<BTreeMap<String, Presence>>,
    /// The mirror missed changes (a slow reader): the next resolution asks the broker again.
    stale: AtomicBool,
}

impl Fleet {
    /// Follows the client's presence changes until the client closes. Call before
    /// `Client::track_presence`, so nothing is missed.
    pub fn follow(self: &std::sync::Arc<Self>, client: &Client) {
        let mut events = client.presence_events();
        let fleet = self.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let mut nodes = fleet.nodes.lock().unwrap();
                        nodes.insert(event.current.name.clone(), event.current);
                    }
                    Err(RecvError::Lagged(_)) => fleet.stale.store(true, Ordering::SeqCst),
                    Err(RecvError::Closed) => break,
                }
            }
        });
    }

    pub fn replace(&self, snapshot: Vec<Presence>) {
        let mut nodes = self.nodes.lock().unwrap();
        nodes.clear();
        nodes.extend(snapshot.into_iter().map(|p| (p.name.clone(), p)));
    }

    fn snapshot(&self) -> Vec<Presence> {
        self.nodes.lock().unwrap().values().cloned().collect()
    }

    /// Every node the broker holds a presence for; a round trip to the broker.
    pub async fn refresh(
        &self,
        client: &Client,
        timeout: Duration,
    ) -> Result<Vec<Presence>, String> {
        self.stale.store(false, Ordering::SeqCst);
        let nodes = client.nodes(timeout).await.map_err(|e| e.to_string())?;
        self.replace(nodes.clone());
        Ok(nodes)
    }

    pub async fn resolve(
        &self,
        client: &Client,
        spec: &Spec,
        timeout: Duration,
    ) -> Result<Resolved, String> {
        if self.stale.load(Ordering::SeqCst) {
            self.refresh(client, timeout).await?;
        }
        match spec {
            Spec::Names(wanted) => self.resolve_names(client, wanted, timeout).await,
            _ => resolve_in(spec, &self.snapshot(), client.topics()).map_err(|e| e.to_string()),
        }
    }

    async fn resolve_names(
        &self,
        client: &Client,
        wanted: &[NodeName],
        timeout: Duration,
    ) -> Result<Resolved, String> {
        let state = |n: &NodeName| client.presence_of(n.as_str()).map(|p| p.state);
        // The common case, every named node online: no waiting, no round trip.
        if wanted.iter().all(|n| state(n) == Some(NodeState::Online)) {
            let mut nodes: Vec<NodeName> = Vec::with_capacity(wanted.len());
            for name in wanted {
                if !nodes.contains(name) {
                    nodes.push(name.clone());
                }
            }
            return Ok(Resolved {
                nodes,
                ..Resolved::default()
            });
        }
        // Names never heard of may have just started: ask the broker for their presence.
        let unknown: Vec<NodeName> = wanted
            .iter()
            .filter(|n| state(n).is_none())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            client
                .nodes_named(&unknown, timeout)
                .await
                .map_err(|e| e.to_string())?;
        }
        // A node just `lost` is often coming back (a blip): give it the client's grace period.
        if wanted.iter().any(|n| state(n) == Some(NodeState::Lost)) {
            let mut events = client.presence_events();
            let until = tokio::time::Instant::now() + plastic_client::LOST_GRACE;
            while wanted.iter().any(|n| state(n) == Some(NodeState::Lost)) {
                match tokio::time::timeout_at(until, events.recv()).await {
                    Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
                    _ => break,
                }
            }
        }
        let known: Vec<Presence> = wanted
            .iter()
            .filter_map(|n| client.presence_of(n.as_str()))
            .collect();
        resolve_in(&Spec::Names(wanted.to_vec()), &known, client.topics())
            .map_err(|e| e.to_string())
    }
}
