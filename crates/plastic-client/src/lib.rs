//! The async plastic client: one MQTT connection (rumqttc) with request/reply correlation,
//! presence tracking and automatic re-subscription.
//!
//! Both the CLI and the Rust node are built on [`Client`]: as in the seed, a client *is* a node
//! with an inbox, and replies come back to that inbox.
//!
//! Two rumqttc facts shape this crate (see `driver.rs`): it does not re-subscribe after a
//! reconnect, so the driver does; and publishing from the task that polls the event loop can
//! deadlock when the request channel is full, so the driver never awaits a publish itself.
//!
//! Modules: `client.rs` (connection, subscriptions, presence), `request.rs` (requests and the
//! loop that waits for their replies), `wait.rs` (the pure state machine that decides what
//! waiting means: replies, lost nodes, restarts, resends, timeouts), `upload.rs` (chunked,
//! resumable, sha256-checked file uploads), `driver.rs` (the event loop task), `state.rs`
//! (what the client and the driver share; neither imports the other), `target.rs` (TARGET
//! names, parsed and resolved against presence, for every front end).

mod broker;
mod client;
mod download;
mod driver;
mod error;
mod keys;
mod presence;
mod request;
mod state;
mod target;
mod tls;
mod upload;
mod wait;

pub use broker::{list_to_string as brokers_to_string, BrokerUrl, MAX_BROKERS};
pub use client::{Client, ClientOptions, DEFAULT_WINDOW};
pub use download::{read_size_for, Assembly, DownloadError, Downloaded, Piece};
pub use error::ClientError;
pub use keys::KeyRing;
pub use presence::PresenceEvent;
pub use state::Delivery;
pub use target::{resolve_in, Resolved, Target, TargetError};
pub use upload::{
    chunk_size_for, Progress, UploadError, UploadEvent, UploadFile, UploadOptions, UploadSource,
    Uploaded, DEFAULT_CHUNK, MAX_CHUNK, MIN_CHUNK,
};
pub use wait::LOST_GRACE;
