//! The command line's top: the list of subcommands and where each goes. Each subcommand's own
//! arguments live beside its code in `cmd/` (one file per command family); the options every
//! command shares are in `global.rs`.

use std::path::PathBuf;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::cmd;
use crate::global::Global;
use crate::session::Session;

const EXAMPLES: &str = "\
Examples:
  plastic hub                                   # broker + registry on 127.0.0.1:1883
  plastic node --name pi-1                      # a node with simulated GPIO
  plastic ls                                    # every node with its presence
  plastic eval pi-1 '2+3'                       # 5
  plastic exec 'sim-*' 'print(\"hi\")'           # on every node matching the glob
  plastic gpio pi-1 write 2=0                   # LED on (active low)
  plastic run pi-1 examples/script_to_deploy.py # deploy and start a script
  plastic cp functions.py pi-1:functions.py     # upload a file

TARGET is a node name, a comma list (pi-1,pi-2), a glob ('sim-*'), group:NAME, pool:NAME or all.
Docs: README.md, docs/protocol.md, docs/security.md.";

#[derive(Debug, Parser)]
#[command(
    name = "plastic",
    version,
    about = "Run code on a fleet of microcontrollers and small computers over MQTT",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: an embedded MQTT broker and a registry that prints nodes as they come and go
    Hub(cmd::hub::HubArgs),
    /// Manage the hub's users (the users file)
    User {
        #[command(subcommand)]
        action: cmd::user::UserAction,
    },
    /// API tokens for scripts using the hub's HTTP API (tokens.toml beside the users file)
    Token {
        #[command(subcommand)]
        action: cmd::token::TokenAction,
    },
    /// What the hub recorded: requests, outcomes, presence changes, refusals
    History(cmd::history::HistoryArgs),
    /// Per-node keys for signed requests
    NodeKey {
        #[command(subcommand)]
        action: cmd::keys::NodeKeyAction,
    },
    /// Certificates for the hub's TLS listener
    Certs {
        #[command(subcommand)]
        action: cmd::keys::CertsAction,
    },
    /// Run a node with simulated GPIO (ESP8266 pin set; pin 2 is the LED, active low)
    Node(cmd::node::NodeArgs),
    /// Run N simulated nodes in one process
    Sim(cmd::node::SimArgs),
    /// Start a hub and 3 simulated nodes, then walk through the seed's demo step by step
    Demo,
    /// List nodes: name, state, platform, address, groups, since
    Ls,
    /// Evaluate a Python expression on nodes and print the result
    Eval(cmd::python::EvalArgs),
    /// Execute Python statements on nodes and print what they printed
    Exec(cmd::python::ExecArgs),
    /// Call a named function on nodes with JSON arguments
    Call(cmd::python::CallArgs),
    /// Read or write GPIO pins
    Gpio(cmd::gpio::GpioArgs),
    /// Blink the on-board LED in the background
    Blink(cmd::gpio::BlinkArgs),
    /// Deploy a script and start it (it replaces a running script of the same name)
    Run(cmd::scripts::RunArgs),
    /// An interactive Python session on one node (scripted when stdin is not a terminal)
    Repl(cmd::repl::ReplArgs),
    /// A node's recent log lines and events, as the hub keeps them; -f follows
    Logs(cmd::logs::LogsArgs),
    /// Stop running scripts (all, or --name) and any blink, without restarting the node
    Stop(cmd::scripts::StopArgs),
    /// Copy a file to nodes (LOCAL TARGET:PATH) or from one node (NODE:PATH LOCAL): chunked,
    /// sha256-verified, resumable
    #[command(
        after_help = "Examples:\n  plastic cp examples/functions.py pi-1:functions.py\n  plastic cp firmware.bin 'sim-*':data/fw.bin --chunk-size 4096\n  plastic cp -r lib/ pi-1:lib                # a folder\n  plastic cp pi-1:data/log.csv .          # download into the current folder"
    )]
    Cp {
        /// The local file to upload, or NODE:PATH to download
        local: PathBuf,
        /// TARGET:PATH (PATH relative to each node's root, A-Za-z0-9_.- components), or the
        /// local file or folder a download goes to
        destination: String,
        /// Raw bytes per chunk (default: 16 KiB, less for nodes that announce a smaller
        /// `max_payload`)
        #[arg(long)]
        chunk_size: Option<usize>,
        /// Upload a folder: every regular file under it, to PATH/<its path in the folder>
        /// (symbolic links and hidden files are skipped and named)
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Remove a stale (offline or lost) node's presence so `ls` stops listing it
    Forget(cmd::forget::ForgetArgs),
    /// List or remove files on nodes
    Fs(cmd::fs::FsArgs),
    /// Send any message (a JSON object, seed dicts as written); waits for the reply unless --no-wait
    Send(cmd::send::SendArgs),
    /// Check that nodes answer
    Ping(cmd::system::TargetArgs),
    /// Show what nodes report about themselves (platform, version, uptime, memory, scripts)
    Info(cmd::system::TargetArgs),
    /// Restart the node program (scripts stop, Python starts afresh; files stay)
    Reset(cmd::system::TargetArgs),
    /// Raise KeyboardInterrupt in the eval/exec/call running on nodes (what Ctrl-C sends)
    Interrupt(cmd::system::InterruptArgs),
    /// Abort one request by message id: dropped if it waits, interrupted if it runs, refused
    /// when it arrives if it has not yet
    Abort(cmd::system::AbortArgs),
    /// Prepare a board to join the hub: its node user, key and agent bundle
    Board {
        #[command(subcommand)]
        action: cmd::board::BoardAction,
    },
    /// The MicroPython agent for boards
    Agent {
        #[command(subcommand)]
        action: cmd::agent::AgentAction,
    },
    /// Measure latency, throughput, fan-out, memory and deploy speed (see docs/performance.md)
    Bench(cmd::bench::BenchArgs),
    /// Follow presence changes, script output and node events
    Watch(cmd::watch::WatchArgs),
    /// Print a shell completion script: plastic completions bash > /etc/bash_completion.d/plastic
    Completions(cmd::completions::CompletionsArgs),
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Hub(args) => {
            // `--broker` with `hub` names the broker an external registry follows; without
            // `--external` it is a mistake (the hub embeds its broker where --listen says).
            if global.broker_given && !args.external {
                return Err(crate::exit::Failure::error(
                    crate::exit::USAGE,
                    "Usage",
                    "`plastic hub` embeds its own broker and listens where --listen says; \
                     --broker is for clients and nodes. To follow another broker without \
                     embedding one, add --external: plastic --broker URL hub --external",
                ));
            }
            cmd::hub::run(&global, args).await
        }
        Command::User { action } => cmd::user::run(action),
        Command::Token { action } => cmd::token::run(action),
        Command::History(args) => cmd::history::run(args),
        Command::NodeKey { action } => cmd::keys::node_key(&global, action),
        Command::Certs { action } => cmd::keys::certs(action),
        Command::Node(args) => cmd::node::run_node(&global, args).await,
        Command::Sim(args) => cmd::node::run_sim(&global, args).await,
        Command::Demo => cmd::demo::run(&global).await,
        Command::Bench(args) => cmd::bench::run(&global, args).await,
        Command::Agent {
            action: cmd::agent::AgentAction::Bundle(args),
        } => cmd::agent::bundle(&global, &args),
        Command::Board { action } => cmd::board::run(&global, action),
        Command::Ls => cmd::ls::run(&global).await,
        Command::Forget(args) => cmd::forget::run(&global, args).await,
        Command::Watch(args) => cmd::watch::run(&global, args).await,
        Command::Run(args) => cmd::scripts::run(&global, args).await,
        Command::Repl(args) => cmd::repl::run(&global, args).await,
        Command::Logs(args) => cmd::logs::run(&global, args).await,
        Command::Completions(args) => {
            cmd::completions::run(args, <Cli as clap::CommandFactory>::command())
        }
        Command::Cp {
            local,
            destination,
            chunk_size,
            recursive,
        } => {
            let source = local.to_string_lossy();
            if !destination.contains(':') && source.contains(':') {
                let session = Session::open(&global).await?;
                let code = cmd::download::to_file(
                    &session,
                    &source,
                    std::path::Path::new(&destination),
                    chunk_size,
                )
                .await;
                session.close().await;
                code
            } else {
                cmd::cp::run(&global, &local, &destination, chunk_size, recursive).await
            }
        }
        command => {
            let session = Session::open(&global).await?;
            let code = request_command(&session, command).await;
            session.close().await;
            code
        }
    }
}

/// The commands that send one request to a TARGET over one session.
async fn request_command(s: &Session, command: Command) -> Result<ExitCode> {
    match command {
        Command::Eval(args) => cmd::python::eval(s, args).await,
        Command::Exec(args) => cmd::python::exec(s, args).await,
        Command::Call(args) => cmd::python::call(s, args).await,
        Command::Gpio(args) => cmd::gpio::gpio(s, args).await,
        Command::Blink(args) => cmd::gpio::blink(s, args).await,
        Command::Stop(args) => cmd::scripts::stop(s, args).await,
        Command::Send(args) => cmd::send::run(s, args).await,
        Command::Fs(args) => cmd::fs::run(s, args).await,
        Command::Ping(args) => cmd::system::ping(s, args).await,
        Command::Info(args) => cmd::system::info(s, args).await,
        Command::Reset(args) => cmd::system::reset(s, args).await,
        Command::Interrupt(args) => cmd::system::interrupt(s, args).await,
        Command::Abort(args) => cmd::system::abort(s, args).await,
        other => unreachable!("{other:?} is routed by `run`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.is_hide_set() || id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                out.push(format!("{path} <{id}>"));
            }
        }
        for sub in cmd.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                out.push(path.clone());
            }
            undocumented(sub, &path, out);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&Cli::command(), "plastic", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_shows_examples() {
        let help = Cli::command().render_help().to_string();
        assert!(
            help.contains("Examples:") && help.contains("plastic eval pi-1"),
            "{help}"
        );
        let mut cli = Cli::command();
        let eval = cli.find_subcommand_mut("eval").unwrap();
        assert!(eval
            .render_help()
            .to_string()
            .contains("plastic eval pi-1 '2+3'"));
    }
}
