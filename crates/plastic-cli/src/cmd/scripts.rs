//! `plastic run` and `plastic stop`: scripts that run on their own on the nodes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::command::{Script, ScriptStarted, Stop, StopReply};

use super::request::request_each_with;
use crate::output::Render;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic run pi-1 examples/script_to_deploy.py   # the seed's blink-forever script\n  plastic run 'sim-*' sensor.py --name sensor"
)]
pub struct RunArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// The Python file to deploy (saved as NAME.py on the node and started)
    pub script: PathBuf,
    /// Script name (default: the file's stem)
    #[arg(long)]
    pub name: Option<String>,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic stop pi-1                  # every script and the blink\n  plastic stop pi-1 --name sensor"
)]
pub struct StopArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// Stop only this script (default: every script and the blink)
    #[arg(long)]
    pub name: Option<String>,
}

pub async fn run(s: &Session, args: RunArgs) -> Result<ExitCode> {
    let source = std::fs::read_to_string(&args.script)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.script.display()))?;
    let name = args
        .name
        .unwrap_or_else(|| Script::name_for_path(&args.script));
    plastic_proto::name::validate_name(&name)?;
    let script = Script {
        script: source,
        name,
    };
    let render = Render::typed(|r: ScriptStarted| format!("script `{}` started", r.name));
    request_each_with(s, &args.target, &script, render, true).await
}

pub async fn stop(s: &Session, args: StopArgs) -> Result<ExitCode> {
    let stop = Stop { name: args.name };
    let render = Render::typed(|r: StopReply| r.describe());
    request_each_with(s, &args.target, &stop, render, false).await
}
