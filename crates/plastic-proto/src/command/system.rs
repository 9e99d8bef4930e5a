//! `ping`, `info` and `reset`: the node itself.

use crate::Capability;
use serde::{Deserialize, Serialize};

/// The reply to `ping`.
pub const PONG: &str = "pong";

#[derive(Debug, Clone, PartialEq)]
pub struct Ping;

#[derive(Debug, Clone, PartialEq)]
pub struct Info;

/// Restarts the node program (a soft reset on a board) after replying.
#[derive(Debug, Clone, PartialEq)]
pub struct Reset;

/// What a node says about itself (docs/protocol.md, "Built-in commands").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoReply {
    pub name: String,
    pub platform: String,
    pub version: String,
    pub protocol: u32,
    /// Seconds since the node program started.
    pub uptime: f64,
    /// Bytes free: the MicroPython heap's on a board, `MemAvailable` on Linux.
    pub free_memory: Option<u64>,
    /// Bytes in all: the heap's size on a board, `MemTotal` on Linux.
    pub heap: Option<u64>,
    /// Most bytes in use: the heap after any message on a board, the process's `VmHWM` on Linux.
    pub mem_peak: Option<u64>,
    pub scripts: Vec<String>,
    pub blinking: bool,
    pub groups: Vec<String>,
}

/// `{"resetting": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetReply {
    pub resetting: bool,
}

no_kwargs!(Ping, "ping", Capability::Command, String);
no_kwargs!(Info, "info", Capability::Command, InfoReply);
no_kwargs!(Reset, "reset", Capability::Command, ResetReply);
