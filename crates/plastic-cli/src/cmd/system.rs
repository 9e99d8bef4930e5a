//! `plastic ping`, `info` and `reset`: the nodes themselves.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::command::{Info, Ping, Reset, ResetReply};

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

pub async fn reset(s: &Session, args: TargetArgs) -> Result<ExitCode> {
    let render = Render::typed(|_: ResetReply| "resetting".to_owned());
    request_each(s, &args.target, &Reset, render).await
}
