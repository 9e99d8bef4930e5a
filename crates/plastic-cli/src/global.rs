//! The options every subcommand shares (broker, prefix, output, timeouts, TLS and keys).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Broker to use: mqtt[s]://[user@]host[:port], or several of one cluster separated by
    /// commas (tried in turn when one fails). The password comes from --password-file,
    /// PLASTIC_PASSWORD or $PLASTIC_HOME/credentials (one in the URL works, with a warning:
    /// other local users can read command lines)
    #[arg(
        long,
        global = true,
        env = "PLASTIC_BROKER",
        default_value = "mqtt://127.0.0.1:1883"
    )]
    pub broker: String,
    /// Topic prefix shared by every node and client of one fleet
    #[arg(long, global = true, env = "PLASTIC_PREFIX", default_value = "plastic")]
    pub prefix: String,
    /// Print one JSON object per line instead of text
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for replies: a positive number, fractions down to 0.01
    #[arg(long, global = true, default_value = "10", value_parser = seconds, allow_negative_numbers = true)]
    pub timeout: f64,
    /// Seconds a request stays valid; a node that receives it later refuses it as `Expired`
    /// instead of running it late
    #[arg(long, global = true, env = "PLASTIC_TTL")]
    pub ttl: Option<f64>,
    /// CA certificate (PEM) that signed the broker's certificate, for mqtts:// (default:
    /// $PLASTIC_HOME/ca.pem if it exists, else the system's roots)
    #[arg(long, global = true, env = "PLASTIC_CA")]
    pub ca: Option<PathBuf>,
    /// Directory of node keys (NODE.key); requests to those nodes are signed (default:
    /// $PLASTIC_HOME/keys)
    #[arg(long, global = true, env = "PLASTIC_KEYS")]
    pub keys: Option<PathBuf>,
    /// Read the broker password from this file (its first line), for the user in --broker
    #[arg(long, global = true, env = "PLASTIC_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Say more on stderr: -v shows reconnect warnings, -vv debug logs
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Whether --broker was given on the command line.
    #[arg(skip)]
    pub broker_given: bool,
}

/// A number of seconds for `--timeout`: positive, at least 0.01, finite.
pub fn seconds(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (e.g. 10 or 0.5)"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(format!(
            "the timeout must be a positive number of seconds, not {text}"
        ));
    }
    if value < 0.01 {
        return Err(format!(
            "the timeout must be at least 0.01 s (10 ms), not {text}"
        ));
    }
    if value >= 1e7 {
        return Err(format!(
            "the timeout must be less than 10,000,000 s, not {text}"
        ));
    }
    Ok(value)
}
