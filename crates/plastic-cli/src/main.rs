//! `plastic`: one binary whose subcommands are thin over the plastic libraries.

mod args;
mod cmd;
mod exit;
mod fdlimit;
mod global;
mod output;
mod session;
mod target;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    exit::quiet_on_closed_stdout();
    let matches = args::Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| exit::usage_error(e));
    let mut cli = match args::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => exit::usage_error(e),
    };
    // `plastic hub --broker URL` means: use that broker, embed none. Only the flag counts: a
    // PLASTIC_BROKER exported for clients must not stop the hub from embedding its broker.
    cli.global.broker_given =
        matches.value_source("broker") == Some(clap::parser::ValueSource::CommandLine);
    // Reconnect warnings are for `-v`, except from the programs that run unattended (hub,
    // node, sim), whose log is the only place a lost broker shows.
    let daemon = matches!(
        cli.command,
        args::Command::Hub(_) | args::Command::Node(_) | args::Command::Sim(_)
    );
    let mut filter =
        String::from("warn,rmqtt=error,rmqtt_net=error,rmqtt_retainer=error,rustpython_vm=error");
    if cli.global.verbose == 0 && !daemon {
        filter.push_str(",plastic_client::driver=error");
    } else if cli.global.verbose > 1 {
        filter.push_str(",plastic=debug,plastic_client=debug,plastic_node=debug,plastic_hub=debug");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PLASTIC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .with_ansi(exit::colour())
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
            return ExitCode::from(exit::FAILED);
        }
    };
    let json = cli.global.json;
    match runtime.block_on(args::run(cli)) {
        Ok(code) => code,
        Err(e) => ExitCode::from(exit::report(&e, json)),
    }
}
