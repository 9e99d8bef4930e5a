//! The plastic node runtime: receives requests on its inbox, dispatches them, replies.
//!
//! Layers, top down: [`node`] owns the MQTT client and the message loop; [`dispatch`] turns one
//! parsed request into an outcome (one file of handlers per concern: [`commands`] for built-ins,
//! [`python`] for eval/exec/function/script, [`files`] for uploads); [`gpio`] is the pin bank.

pub mod blink;
pub mod commands;
pub mod dispatch;
pub mod files;
pub mod gpio;
pub mod node;
pub mod python;
pub mod recent;

pub use node::{Node, NodeConfig};
