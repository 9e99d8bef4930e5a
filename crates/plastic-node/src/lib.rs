//! The plastic node runtime: receives requests on its inbox, runs them, replies.
//!
//! Modules, top down (each uses only modules below it):
//!
//! - [`node`]: connection and the message loop; [`presence`]: the retained status;
//!   [`bridge`]: what Python reaches of the node (the [`python::Host`] impl).
//! - [`request`]: the request path, one delivery to the end: [`admission`] decides (pure:
//!   signatures, duplicates, freshness, TTL, load), [`dispatch`] runs the body ([`commands`]
//!   for built-ins, [`python`] for eval/exec/function/script, [`files`] for uploads), and
//!   [`outbox`] addresses, sends and remembers every reply, refusals included.
//! - [`state`]: what requests share; handlers see only [`facilities`].
//! - [`recent`]: the duplicate memory; [`log_topic`]: the log topic; [`gpio`], [`blink`].

pub mod admission;
pub mod blink;
pub mod bridge;
pub mod commands;
pub mod confine;
pub mod dispatch;
pub mod facilities;
pub mod files;
pub mod gpio;
pub mod log_topic;
pub mod node;
pub mod outbox;
pub mod presence;
pub mod python;
pub mod recent;
pub mod request;
pub mod state;

pub use node::{Ended, Node, NodeConfig};
