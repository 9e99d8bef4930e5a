//! Exit codes, the same for every command (README, "Exit codes"):
//!
//! - 0: everything asked for was done;
//! - 1: a node failed, did not answer, or nothing was targeted (nothing to do with the command
//!   line);
//! - 2: a bad command line (or a local file it names that cannot be used);
//! - 3: the broker is unreachable or refused the login.
//!
//! A command returns an [`ExitCode`] for outcomes it printed itself; an error it returns is
//! classified here and printed once, as a sentence or (with `--json`) as one JSON line on
//! stdout.

use plastic_client::ClientError;
use serde_json::json;

pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const BROKER: u8 = 3;

/// An error that knows its exit code and kind.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub kind: &'static str,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    pub fn error(code: u8, kind: &'static str, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            code,
            kind,
            message: message.into(),
        })
    }
}

/// A failure to connect, with a message for its cause: an unreachable broker suggests
/// starting the hub, a refused login suggests checking the credentials (never the hub).
pub fn broker_failure(e: ClientError) -> anyhow::Error {
    match &e {
        // A certificate the client does not trust: the broker is there, the CA is missing.
        ClientError::Unreachable {
            last_error: Some(last),
            ..
        } if last.contains("certificate") => Failure::error(
            BROKER,
            "BrokerUntrusted",
            format!(
                "{e}: the broker's TLS certificate is not trusted; pass --ca FILE (or \
                 PLASTIC_CA) with the CA that signed it (`plastic certs init` writes ca.pem)"
            ),
        ),
        ClientError::Unreachable { .. } => Failure::error(
            BROKER,
            "BrokerUnreachable",
            format!("{e} (is `plastic hub` running, and is --broker right?)"),
        ),
        ClientError::Refused { .. } => Failure::error(
            BROKER,
            "LoginRefused",
            format!(
                "{e}; check the user name and the password (--password-file, PLASTIC_PASSWORD \
                 or $PLASTIC_HOME/credentials)"
            ),
        ),
        ClientError::Tls(_) => Failure::error(BROKER, "BrokerUnreachable", e.to_string()),
        _ => anyhow::Error::new(e),
    }
}

/// The exit code and kind of an error a command returned.
pub fn classify(e: &anyhow::Error) -> (u8, &'static str) {
    for cause in e.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return (f.code, f.kind);
        }
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            match c {
                ClientError::Unreachable { .. } | ClientError::Tls(_) | ClientError::Closed => {
                    return (BROKER, "BrokerUnreachable")
                }
                ClientError::Refused { .. } => return (BROKER, "LoginRefused"),
                ClientError::Timeout { .. } | ClientError::NodeLost { .. } => {
                    return (FAILED, "Timeout")
                }
                _ => {}
            }
        }
    }
    (USAGE, "Usage")
}

/// Prints an error a command returned and gives its exit code.
pub fn report(e: &anyhow::Error, json: bool) -> u8 {
    let (code, kind) = classify(e);
    let message = format!("{e:#}");
    if json {
        println!(
            "{}",
            json!({"ok": false, "error": {"kind": kind, "message": message, "traceback": ""}})
        );
    } else {
        eprintln!("error: {}", crate::output::shown(&message));
    }
    code
}

/// A command-line error from clap: as clap prints it, or as a JSON line with `--json`.
pub fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let informational = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !informational && std::env::args_os().any(|a| a == "--json") {
        let rendered = e.render().to_string();
        let message = rendered
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned();
        println!(
            "{}",
            json!({"ok": false, "error": {"kind": "Usage", "message": message, "traceback": ""}})
        );
        std::process::exit(USAGE.into());
    }
    e.exit()
}

/// A closed stdout (`plastic watch | grep -m1 event`) ends the program quietly instead of
/// panicking with "failed printing to stdout: Broken pipe": the reader has what it wanted.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Whether output may be coloured: only on a terminal (stdout and stderr), and not with
/// `NO_COLOR` set (<https://no-color.org>).
pub fn colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal()
}
