//! Embedding rmqtt.
//!
//! Two rmqtt facts matter here: retained messages need the retainer plugin registered (without
//! it rmqtt drops them with only a warning, and presence would vanish), and its listener has
//! TCP_NODELAY off by default (a QoS 1 round trip then takes ~88 ms instead of ~0.1 ms).

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use anyhow::Context;
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;

/// Retained presence must outlive any message expiry: `0s` means never expire.
const RETAINER_CONFIG: &str = r#"
retained_message_ttl = "0s"
max_retained_messages = 0
max_payload_size = "1MB"
[storage]
type = "ram"
"#;

/// A running embedded broker.
#[derive(Debug, Clone, Copy)]
pub struct BrokerHandle {
    /// The bound address (useful when asked for port 0).
    pub addr: SocketAddr,
}

/// Binds `listen` and serves MQTT 3.1.1 and 5 on it in the background (on the current tokio
/// runtime) until the process ends.
pub async fn start_broker(listen: SocketAddr) -> anyhow::Result<BrokerHandle> {
    let scx = ServerContext::new()
        .plugins_config_map_add("rmqtt-retainer", RETAINER_CONFIG)
        .build()
        .await;
    rmqtt_retainer::register(&scx, true, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("registering the retainer plugin")?;
    let listener = Builder::new()
        .name("plastic")
        .laddr(listen)
        .nodelay(true)
        .reuseaddr(Some(true))
        .allow_anonymous(true)
        .max_packet_size(1024 * 1024)
        // Requests are small and many: a deeper in-flight window raises pipelined throughput.
        .max_inflight(NonZeroU16::new(128).expect("non-zero"))
        .max_mqueue_len(10_000)
        .session_expiry_interval(Duration::from_secs(2 * 60 * 60))
        .bind()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().map_err(|e| anyhow::anyhow!("{e}"))?;
    let listener = listener.tcp().map_err(|e| anyhow::anyhow!("{e}"))?;
    MqttServer::new(scx)
        .listener_by_id(listener, 1)
        .build()
        .start();
    Ok(BrokerHandle { addr })
}
