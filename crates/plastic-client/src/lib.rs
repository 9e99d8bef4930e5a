//! The async plastic client: one MQTT connection (rumqttc) with request/reply correlation,
//! presence tracking and automatic re-subscription.
//!
//! Both the CLI and the Rust node are built on [`Client`]: as in the seed, a client *is* a node
//! with an inbox, and replies come back to that inbox.
//!
//! Two rumqttc facts shape this crate (see `driver.rs`): it does not re-subscribe after a
//! reconnect, so the driver does; and publishing from the task that polls the event loop can
//! deadlock when the request channel is full, so the driver never awaits a publish itself.

mod broker;
mod client;
mod driver;
mod error;
mod keys;
mod presence;
mod tls;

pub use broker::BrokerUrl;
pub use client::{Client, ClientOptions, Delivery, LOST_GRACE};
pub use error::ClientError;
pub use keys::KeyRing;
pub use presence::PresenceEvent;
