//! The plastic hub: an embedded MQTT broker (rmqtt) and a registry that follows node presence.
//!
//! The hub keeps each node's recent log and events (`tails`, republished retained for
//! `plastic logs`); apart from that it adds nothing to the protocol: every client could talk to Mosquitto instead, and with
//! `--broker` the hub runs only its registry against that external broker. With a users file
//! it also authenticates connections and enforces roles and capabilities (`policy`), through
//! rmqtt's hooks (`auth`).

mod auth;
mod broker;
pub mod certs;
mod gate;
mod hasher;
mod head;
pub mod history;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod policy;
mod pools;
mod registry;
pub mod tails;
pub mod tokens;
pub mod users;

pub use auth::Refusal;
pub use broker::{start_broker, BrokerHandle, BrokerOptions};
pub use limits::HubLimits;
pub use registry::{describe, describe_change, Activity, Registry};
