//! `plastic`: one binary whose subcommands are thin over the plastic libraries.

mod args;
mod cmd;
mod global;
mod output;
mod session;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let matches = args::Cli::command().get_matches();
    let mut cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // `plastic hub --broker URL` means: use that broker, embed none. Only the flag counts: a
    // PLASTIC_BROKER exported for clients must not stop the hub from embedding its broker.
    cli.global.broker_given =
        matches.value_source("broker") == Some(clap::parser::ValueSource::CommandLine);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLASTIC_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,rmqtt=error,rmqtt_net=error,rmqtt_retainer=error,rustpython_vm=error",
                )
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    // Only the broker has work for two cores. Everywhere else a single-threaded runtime is
    // faster: on this kind of VM every wake-up across cores costs ~30 us, more than a whole
    // request's processing (Python has threads of its own either way).
    let mut builder = match cli.command {
        args::Command::Hub(_) | args::Command::Demo => tokio::runtime::Builder::new_multi_thread(),
        _ => tokio::runtime::Builder::new_current_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(args::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
