//! The plastic wire protocol as plain data.
//!
//! Everything here is pure: bytes in, typed values out, and back. No sockets, no clocks other
//! than what callers pass in, no threads. The Rust node, the client, the hub and the test suites
//! all share this crate, and `docs/protocol.md` describes the same rules for the MicroPython
//! agent and third-party clients. Change the document first, then this crate and the agent.

pub mod capability;
pub mod command;
pub mod error;
mod fields;
pub mod file;
pub mod id;
pub mod message;
pub mod name;
pub mod presence;
pub mod reply;
pub mod request;
pub mod sign;
pub mod topic;

pub use capability::Capability;
pub use command::{Command, Operation};
pub use error::ProtoError;
pub use file::{FileChunk, RelPath};
pub use id::new_message_id;
pub use message::{Body, Envelope, Incoming};
pub use name::NodeName;
pub use presence::{NodeState, Presence};
pub use reply::{ErrorInfo, Reply, ReplyError, Taken};
pub use request::Request;
pub use sign::{NodeKey, SignatureError};
pub use topic::{TopicKind, Topics, POOL_SHARE};

/// Largest MQTT payload a node accepts. Bigger requests are refused before parsing, so a
/// hostile sender cannot make a small board allocate megabytes. Files larger than this travel
/// in chunks (see [`file`]).
pub const MAX_PAYLOAD: usize = 256 * 1024;

/// Protocol revision carried in presence, so a client can tell old agents from new.
pub const PROTOCOL_VERSION: u32 = 1;

/// Seconds since the Unix epoch as a float, the form of `time_stamp` and `since`.
pub fn unix_seconds(now: std::time::SystemTime) -> f64 {
    now.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
