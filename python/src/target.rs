//! TARGET to nodes, with the CLI's rules (crates/plastic-cli/src/target.rs): a node name, a
//! comma list, a glob (`esp-*`), `group:NAME` or `all`. `all` and `group:` go out as one
//! broadcast publish unless a targeted node has a key (signed requests are for one node).
//!
//! Unlike a CLI run, a Python client lives long: it follows every node's presence from the
//! start (`Fleet`, fed by the client's presence events), so resolving a target costs no round
//! trip once the fleet is known; only names not seen yet are asked for.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use plastic_client::Client;
use plastic_proto::{name::validate_name, NodeName, NodeState, Presence};
use tokio::sync::broadcast::error::RecvError;

#[derive(Debug, Clone)]
pub enum Spec {
    Names(Vec<NodeName>),
    Glob(String, globset::GlobMatcher),
    Group(String),
    All,
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Spec::All);
        }
        if let Some(group) = text.strip_prefix("group:") {
            validate_name(group).map_err(|e| e.to_string())?;
            return Ok(Spec::Group(group.to_owned()));
        }
        if text.contains(['*', '?', '[']) {
            let glob =
                globset::Glob::new(text).map_err(|e| format!("invalid glob `{text}`: {e}"))?;
            return Ok(Spec::Glob(text.to_owned(), glob.compile_matcher()));
        }
        let names = text
            .split(',')
            .map(|n| NodeName::parse(n.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(Spec::Names(names))
    }
}

/// Who a request goes to.
pub struct Resolved {
    pub nodes: Vec<NodeName>,
    /// For `all` and `group:`: the broadcast topic and the `receiver` to address.
    pub broadcast: Option<(String, String)>,
    /// Named nodes that cannot be reached, with the reason.
    pub unreachable: Vec<(String, String)>,
}

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
        let online = |p: &&Presence| p.state == NodeState::Online;
        let names = |ps: Vec<&Presence>| {
            ps.into_iter()
                .filter_map(|p| NodeName::parse(&p.name).ok())
                .collect::<Vec<_>>()
        };
        let topics = client.topics();
        let fleet = match spec {
            Spec::Names(wanted) => return self.resolve_names(client, wanted, timeout).await,
            _ => self.snapshot(),
        };
        Ok(match spec {
            Spec::All => Resolved {
                nodes: names(fleet.iter().filter(online).collect()),
                broadcast: Some((topics.all_inbox(), "all".into())),
                unreachable: vec![],
            },
            Spec::Group(g) => Resolved {
                nodes: names(
                    fleet
                        .iter()
                        .filter(online)
                        .filter(|p| p.groups.iter().any(|x| x == g))
                        .collect(),
                ),
                broadcast: Some((
                    topics.group_inbox(g).map_err(|e| e.to_string())?,
                    format!("group:{g}"),
                )),
                unreachable: vec![],
            },
            Spec::Glob(_, matcher) => Resolved {
                nodes: names(
                    fleet
                        .iter()
                        .filter(online)
                        .filter(|p| matcher.is_match(&p.name))
                        .collect(),
                ),
                broadcast: None,
                unreachable: vec![],
            },
            Spec::Names(_) => unreachable!("names are resolved above"),
        })
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
                broadcast: None,
                unreachable: vec![],
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
        let mut nodes = Vec::new();
        let mut unreachable = Vec::new();
        for name in wanted {
            match state(name) {
                Some(NodeState::Online) => {
                    if !nodes.contains(name) {
                        nodes.push(name.clone())
                    }
                }
                Some(s) => {
                    unreachable.push((name.to_string(), format!("node {name} is {}", s.as_str())))
                }
                None => unreachable.push((
                    name.to_string(),
                    format!("unknown node `{name}`: no presence seen (see Client.nodes())"),
                )),
            }
        }
        Ok(Resolved {
            nodes,
            broadcast: None,
            unreachable,
        })
    }
}
