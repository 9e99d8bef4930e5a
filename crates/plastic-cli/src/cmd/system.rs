//! `plastic ping`, `info`, `reset`, `interrupt` and `abort`: the nodes themselves.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::command::{
    Abort, AbortReply, Info, Interrupt, InterruptReply, Ping, Reset, ResetReply,
};

use super::request::request_each;
use crate::output::Render;
use crate::session::Session;
use crate::target::{resolve, TargetSpec};

#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
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
    after_help = "Examples:\n  plastic interrupt pi-1                  # whatever eval/exec/call runs there\n  plastic interrupt pi-1 --id 3f2a...     # one request, by its message id\n\nCtrl-C in a waiting `plastic eval`, `exec`, `call` or `send` aborts its own request (see `plastic abort`).\nOn a board (the MicroPython agent) blocking code cannot be interrupted; the watchdog resets it."
)]
pub struct InterruptArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// Only the request with this message id (default: every running or queued one)
    #[arg(long)]
    pub id: Option<String>,
}

/// Raises KeyboardInterrupt in the nodes' running eval/exec/function requests.
pub async fn interrupt(s: &Session, args: InterruptArgs) -> Result<ExitCode> {
    let render = Render::typed(|r: InterruptReply| r.describe());
    let target = members_if_pool(s, &args.target).await?;
    request_each(s, &target, &Interrupt { id: args.id }, render).await
}

/// `interrupt` and `abort` act on requests a node has: for a pool they go to every online
/// member (the one with the request acts on it), not to one member the broker picks.
async fn members_if_pool(s: &Session, target: &str) -> Result<String> {
    let spec = TargetSpec::parse(target)?;
    if !matches!(spec, TargetSpec::Pool(_)) {
        return Ok(target.to_owned());
    }
    let members = resolve(&s.client, &spec, s.timeout).await?.nodes;
    Ok(members
        .iter()
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(","))
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic send pi-1 '{\"type\": \"exec\", \"to_exec\": \"work()\", \"message_id\": \"job-7\"}' --no-wait\n  plastic abort pi-1 job-7\n\nWaiting behind other work: dropped, answered Aborted. Running: interrupted (KeyboardInterrupt).\nNot arrived yet (queued for an offline or busy node): refused as Aborted when it arrives.\nExit 0 whatever the request's state; --json prints it."
)]
pub struct AbortArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// The message id of the request to abort
    pub id: String,
}

/// Ends one request, by message id, without running it where it can (docs/protocol.md).
pub async fn abort(s: &Session, args: AbortArgs) -> Result<ExitCode> {
    let render = Render::typed(|r: AbortReply| r.describe());
    let target = members_if_pool(s, &args.target).await?;
    request_each(s, &target, &Abort { id: args.id }, render).await
}

pub async fn reset(s: &Session, args: TargetArgs) -> Result<ExitCode> {
    let render = Render::typed(|_: ResetReply| "resetting".to_owned());
    request_each(s, &args.target, &Reset, render).await
}
