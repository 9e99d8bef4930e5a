//! The plastic hub: an embedded MQTT broker (rmqtt) and a registry that follows node presence.
//!
//! The hub adds nothing to the protocol: every client could talk to Mosquitto instead, and with
//! `--broker` the hub runs only its registry against that external broker.

mod broker;
mod registry;

pub use broker::{start_broker, BrokerHandle};
pub use registry::{describe_change, Registry};
