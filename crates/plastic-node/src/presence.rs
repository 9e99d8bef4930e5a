//! Presence: the node's retained status (docs/protocol.md, "Presence").
//!
//! `online` after every (re)connection, once subscriptions are in place; `online` again when
//! the node sees itself `lost` or `offline` while connected (a broker may publish the will of a
//! connection that died after the new one said `online`, as on a session takeover after a
//! blip); `offline` on a clean shutdown; `lost` as the MQTT last will.

use std::time::{Duration, SystemTime};

use plastic_client::{BrokerUrl, Client};
use plastic_proto::{unix_seconds, NodeName, NodeState, Presence, PROTOCOL_VERSION};
use rumqttc::QoS;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The node's presence as first announced, at `now`.
pub fn initial(
    name: &NodeName,
    platform: &str,
    groups: &[String],
    pools: &[String],
    broker: &BrokerUrl,
    now: f64,
) -> Presence {
    Presence {
        name: name.to_string(),
        state: NodeState::Online,
        platform: platform.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol: PROTOCOL_VERSION,
        address: local_address(broker),
        groups: groups.to_vec(),
        pools: pools.to_vec(),
        since: now,
        max_payload: None,
        window: None,
        uptime: None,
        mem_free: None,
        boot: Some(plastic_proto::new_message_id()[..16].to_owned()),
    }
}

/// The last will: `lost`, stamped when the connection begins.
pub fn will(presence: &Presence, now: f64) -> Vec<u8> {
    presence.with_state(NodeState::Lost, now).to_bytes()
}

/// Whether a status the node received about itself says it is not online.
pub fn says_not_online(payload: &[u8]) -> bool {
    Presence::parse(payload).is_some_and(|p| p.state != NodeState::Online)
}

/// Publishes the node's presence.
#[derive(Clone)]
pub struct Herald {
    client: Client,
    topic: String,
    presence: Presence,
    /// Counts announcements the broker has processed.
    announced: watch::Sender<u64>,
    /// When the node program started: each presence carries its uptime.
    started: std::time::Instant,
}

impl Herald {
    pub fn new(client: Client, topic: String, presence: Presence) -> Self {
        Herald {
            client,
            topic,
            presence,
            announced: watch::channel(0).0,
            started: std::time::Instant::now(),
        }
    }

    /// The presence in `state`, stamped now, with the node's uptime and free memory.
    fn stamped(&self, state: NodeState) -> Presence {
        Presence {
            uptime: Some((self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
            mem_free: crate::commands::meminfo("MemAvailable:"),
            ..self
                .presence
                .with_state(state, unix_seconds(SystemTime::now()))
        }
    }

    /// Changes each time the node has (re)connected, subscribed, and the broker has processed
    /// its `online` presence.
    pub fn announcements(&self) -> watch::Receiver<u64> {
        self.announced.subscribe()
    }

    /// Announces `online` after every (re)connection, until aborted.
    pub fn spawn_announcer(&self) -> JoinHandle<()> {
        let herald = self.clone();
        tokio::spawn(async move {
            let mut conn = herald.client.connection();
            loop {
                if conn.borrow_and_update().is_some() {
                    herald.online().await;
                    // The broker handles one connection's packets in order: once our marker
                    // is back, the retained presence is stored.
                    if herald.client.sync(Duration::from_secs(10)).await.is_ok() {
                        herald.announced.send_modify(|n| *n += 1);
                    }
                }
                if conn.changed().await.is_err() {
                    break;
                }
            }
        })
    }

    /// Whether a status the node received about itself calls for announcing `online` again:
    /// it says otherwise while the node is connected.
    pub fn must_reannounce(&self, payload: &[u8]) -> bool {
        says_not_online(payload) && self.client.connection().borrow().is_some()
    }

    /// Publishes `online`, stamped now.
    pub async fn online(&self) {
        let online = self.stamped(NodeState::Online);
        let _ = self
            .client
            .publish(&self.topic, online.to_bytes(), QoS::AtLeastOnce, true)
            .await;
    }

    /// The `offline` status to publish on a clean shutdown, with its topic.
    pub fn offline(&self) -> (String, Vec<u8>) {
        let offline = self.stamped(NodeState::Offline);
        (self.topic.clone(), offline.to_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(state: NodeState) -> Vec<u8> {
        Presence {
            name: "pi-1".into(),
            state,
            platform: "sim".into(),
            version: "0".into(),
            protocol: PROTOCOL_VERSION,
            address: None,
            groups: vec![],
            pools: vec![],
            since: 1.0,
            max_payload: None,
            window: None,
            uptime: None,
            mem_free: None,
            boot: None,
        }
        .to_bytes()
    }

    #[test]
    fn a_late_will_or_offline_calls_for_online_again() {
        assert!(says_not_online(&presence(NodeState::Lost)));
        assert!(says_not_online(&presence(NodeState::Offline)));
        assert!(!says_not_online(&presence(NodeState::Online)));
        assert!(
            !says_not_online(b"not presence"),
            "garbage is not a reason to announce"
        );
    }
}
