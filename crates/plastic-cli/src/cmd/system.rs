//! `plastic ping`, `info`, `reset` and `interrupt`: the nodes themselves.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::command::{Info, Interrupt, InterruptReply, Ping, Reset, ResetReply};

use super::request::request_each;
use crate::output::Render;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
}

pub async fn ping(s: &Session, args: TargetArgs) -> Result<ExitCode> {
    request_each(s, &args.target, &Ping, Render::Value).await
}

pub async fn info(s: &Session, args: TargetArgs) -> Result<ExitCode> {
    request_each(s, &args.target, &Info, Render::Value).await
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic interrupt pi-1                  # whatever eval/exec/call runs there\n  plastic interrupt pi-1 --id 3f2a...     # one request, by its message id\n\nCtrl-C in a waiting `plastic eval`, `exec`, `call` or `send` does this for its own request.\nOn a board (the MicroPython agent) blocking code cannot be interrupted; the watchdog resets it."
)]
pub struct InterruptArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// Only the request with this message id (default: every running or queued one)
    #[arg(long)]
    pub id: Option<String>,
}

/// Raises KeyboardInterrupt in the nodes' running eval/exec/function requests.
pub async fn interrupt(s: &Session, args: InterruptArgs) -> Result<ExitCode> {
    let render = Render::typed(|r: InterruptReply| r.describe());
    request_each(s, &args.target, &Interrupt { id: args.id }, render).await
}

pub async fn reset(s: &Session, args: TargetArgs) -> Result<ExitCode> {
    let render = Render::typed(|_: ResetReply| "resetting".to_owned());
    request_each(s, &args.target, &Reset, render).await
}
