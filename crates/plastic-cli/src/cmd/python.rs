//! `plastic eval`, `exec` and `call`: Python on nodes.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::command::{Eval, Exec, Function};
use serde_json::Value;

use super::request::request_each;
use crate::output::Render;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic eval pi-1 '2+3'\n  plastic eval 'sim-*' 'machine.Pin(2).value()'\n  plastic --json eval all 'len(plastic.name)'"
)]
pub struct EvalArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// One Python expression; its value is printed as JSON (a repr string for values JSON
    /// cannot hold)
    pub code: String,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic exec pi-1 'print(\"Testing exec !\")'\n  plastic exec group:lab 'import functions'"
)]
pub struct ExecArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// Python statements; what they print is shown
    pub code: String,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic call pi-1 functions.add '{\"a\":2,\"b\":3}'   # kwargs\n  plastic call pi-1 functions.add '[2,3]'             # args"
)]
pub struct CallArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME or all
    pub target: String,
    /// The callable's (dotted) name in the node's namespace; `mod.f` imports `mod`
    pub function: String,
    /// Arguments as JSON: an object for keyword arguments, an array for positional ones,
    /// anything else as the one argument
    pub args: Option<String>,
}

pub async fn eval(s: &Session, args: EvalArgs) -> Result<ExitCode> {
    request_each(s, &args.target, &Eval::new(args.code), Render::Value).await
}

pub async fn exec(s: &Session, args: ExecArgs) -> Result<ExitCode> {
    request_each(s, &args.target, &Exec::new(args.code), Render::Quiet).await
}

pub async fn call(s: &Session, args: CallArgs) -> Result<ExitCode> {
    let json = args
        .args
        .as_deref()
        .map(serde_json::from_str::<Value>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("ARGS must be JSON: {e}"))?;
    let call = Function::with_json_args(&args.function, json);
    request_each(s, &args.target, &call, Render::Value).await
}
