//! Presence: the retained JSON on `<prefix>/<node>/status`.
//!
//! A node publishes `online` when it connects, `offline` when it shuts down cleanly, and leaves
//! a last will saying `lost` for the broker to publish when the connection dies. All three are
//! retained, so a client that subscribes later sees every node's latest state at once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    Online,
    Offline,
    Lost,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Offline => "offline",
            NodeState::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub name: String,
    pub state: NodeState,
    /// `linux`, `sim`, `esp8266`, `esp32`, `unix`...
    #[serde(default)]
    pub platform: String,
    /// Version of the node program (the Rust node or the MicroPython agent).
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub protocol: u32,
    /// The node's own idea of its network address, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The pools the node takes tasks for (docs/protocol.md, "Pools"); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// When the node entered this state, seconds since the Unix epoch.
    #[serde(default)]
    pub since: f64,
    /// The largest message the node accepts now, in bytes, if less than the protocol's
    /// 256 KiB (a board with little free memory). Senders size file chunks to fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload: Option<u64>,
    /// Random per start of the node program. A client may resend an unanswered request to a
    /// node whose `boot` has not changed (its duplicate memory is intact), never to one that
    /// restarted: that could run the request twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The most requests a sender should have waiting for replies from this node at once: its
    /// duplicate memory holds this many ids, so a resend of any of them is still recognised.
    /// A board's memory is short (8 or 16); absent: the node sets no limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<u64>,
    /// Seconds the node program had run when it published this presence (a monotonic clock:
    /// right on a board whose calendar clock is not set). A reader adds the time since it
    /// received the presence for the uptime now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime: Option<f64>,
    /// Free memory in bytes when the node published this presence (a board's free heap, a
    /// Linux node's `MemAvailable`). A snapshot: `info` reads it now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_free: Option<u64>,
}

impl Presence {
    pub fn with_state(&self, state: NodeState, since: f64) -> Self {
        Presence {
            state,
            since,
            ..self.clone()
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn parse(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_round_trips_and_states_are_lowercase() {
        let p = Presence {
            name: "pi-1".into(),
            state: NodeState::Online,
            platform: "sim".into(),
            version: "0.1.0".into(),
            protocol: 1,
            address: Some("127.0.0.1".into()),
            groups: vec!["lab".into()],
            pools: vec![],
            since: 1.0,
            max_payload: None,
            window: None,
            uptime: None,
            mem_free: None,
            boot: None,
        };
        let text = String::from_utf8(p.to_bytes()).unwrap();
        assert!(text.contains("\"state\":\"online\""), "{text}");
        let lost = p.with_state(NodeState::Lost, 2.0);
        assert_eq!(Presence::parse(&lost.to_bytes()).unwrap(), lost);
        assert_eq!(Presence::parse(b"garbage"), None);
    }
}
