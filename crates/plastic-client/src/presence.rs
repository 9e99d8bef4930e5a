//! The client's view of the fleet, built from retained presence messages.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use plastic_proto::Presence;

/// A presence change as seen by this client.
#[derive(Debug, Clone, PartialEq)]
pub struct PresenceEvent {
    pub previous: Option<Presence>,
    pub current: Presence,
}

/// Latest presence of every node seen, by name.
#[derive(Debug, Default)]
pub(crate) struct PresenceTable {
    nodes: BTreeMap<String, Presence>,
    /// Nodes whose presence arrived on the current connection. After a reconnect the table
    /// holds what was true before it; a decision that needs the present (may a request be
    /// resent?) waits for fresh presence.
    fresh: BTreeSet<String>,
    /// When each node's current presence first arrived (a copy of the same presence, as a
    /// reconnect brings again, keeps the first time): how old a presence is, whatever the
    /// node's clock says.
    received: BTreeMap<String, Instant>,
}

impl PresenceTable {
    /// Records a presence; returns the change if anything but nothing new was learnt.
    pub(crate) fn update(&mut self, node: &str, payload: &[u8]) -> Option<PresenceEvent> {
        if payload.is_empty() {
            // An empty retained message clears the topic: the node was forgotten.
            self.nodes.remove(node);
            self.received.remove(node);
            return None;
        }
        let mut current = Presence::parse(payload)?;
        // The topic, not the payload, says whose presence this is.
        node.clone_into(&mut current.name);
        self.fresh.insert(node.to_owned());
        let previous = self.nodes.insert(node.to_owned(), current.clone());
        let changed = previous.as_ref() != Some(&current);
        if changed || !self.received.contains_key(node) {
            self.received.insert(node.to_owned(), Instant::now());
        }
        changed.then_some(PresenceEvent { previous, current })
    }

    pub(crate) fn snapshot(&self) -> Vec<Presence> {
        self.nodes.values().cloned().collect()
    }

    /// Every presence with when it first arrived.
    pub(crate) fn snapshot_received(&self) -> Vec<(Presence, Instant)> {
        self.nodes
            .iter()
            .map(|(name, p)| {
                let at = self
                    .received
                    .get(name)
                    .copied()
                    .unwrap_or_else(Instant::now);
                (p.clone(), at)
            })
            .collect()
    }

    pub(crate) fn get_received(&self, node: &str) -> Option<(Presence, Instant)> {
        let p = self.nodes.get(node)?.clone();
        let at = self
            .received
            .get(node)
            .copied()
            .unwrap_or_else(Instant::now);
        Some((p, at))
    }

    pub(crate) fn get(&self, node: &str) -> Option<Presence> {
        self.nodes.get(node).cloned()
    }

    /// The node's presence if it arrived on the current connection.
    pub(crate) fn get_fresh(&self, node: &str) -> Option<Presence> {
        self.fresh
            .contains(node)
            .then(|| self.nodes.get(node).cloned())
            .flatten()
    }

    /// A new connection: what the table holds is from before it.
    pub(crate) fn mark_stale(&mut self) {
        self.fresh.clear();
    }
}
