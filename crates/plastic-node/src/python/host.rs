//! The node as Python sees it: the [`Host`] trait.
//!
//! Its own module so that the engine (which hands a host to each job) and the native bridge
//! (which calls it from Python) both depend on it and not on each other.

use std::time::Duration;

use plastic_proto::ErrorInfo;
use serde_json::{Map, Value};

use crate::gpio::Gpio;

/// What Python on a node can reach of the node. Implemented by the node runtime; every method
/// may be called from any Python thread.
pub trait Host: Send + Sync + 'static {
    fn node_name(&self) -> &str;
    fn gpio(&self) -> &dyn Gpio;
    fn unique_id(&self) -> Vec<u8>;
    /// Sends without waiting; `to` is a node, `all` or `group:<g>`. Returns the message id.
    fn send(&self, to: &str, msg: Map<String, Value>) -> Result<String, String>;
    /// Blocks the calling (Python) thread until the reply's result, an error reply or timeout.
    fn request(
        &self,
        to: &str,
        msg: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, ErrorInfo>;
    fn publish_event(&self, topic: &str, data: Value) -> Result<(), String>;
    /// Whether `to` runs its Python on this node's engine thread (itself, or a node of the
    /// same `plastic sim` process), where a blocking request from eval would wait for itself.
    fn shares_engine_with(&self, to: &str) -> bool;
    /// A line for the log topic. `source` is `script:<name>`, `node` or `python`.
    fn log(&self, source: &str, level: &str, text: &str);
    fn reset(&self);
}
