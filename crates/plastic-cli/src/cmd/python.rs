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
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// One Python expression; its value is printed as JSON (a repr string for values JSON
    /// cannot hold)
    pub code: String,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic exec pi-1 'print(\"Testing exec !\")'\n  plastic exec group:lab 'import functions'\n  plastic exec pi-1 -f setup.py                 # the statements in a file\n  echo 'print(1)' | plastic exec pi-1 -         # from standard input"
)]
pub struct ExecArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// Python statements; what they print is shown. `-` reads them from standard input
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub code: Option<String>,
    /// Read the statements from this file (UTF-8) instead
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

impl ExecArgs {
    /// The statements: CODE, standard input for `-`, or --file's contents.
    fn source(&self) -> Result<String> {
        use std::io::Read;
        match (&self.code, &self.file) {
            (_, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display())),
            (Some(code), None) if code == "-" => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    anyhow::anyhow!("cannot read the code from standard input: {e}")
                })?;
                Ok(text)
            }
            (Some(code), None) => Ok(code.clone()),
            (None, None) => anyhow::bail!("give the code, `-` for standard input, or --file FILE"),
        }
    }
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic call pi-1 functions.add '{\"a\":2,\"b\":3}'   # kwargs\n  plastic call pi-1 functions.add '[2,3]'             # args"
)]
pub struct CallArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
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
    let code = args.source()?;
    request_each(s, &args.target, &Exec::new(code), Render::Quiet).await
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
