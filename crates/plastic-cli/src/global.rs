//! The options every subcommand shares (broker, prefix, output, timeouts, TLS and keys).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Broker to use: mqtt[s]://[user@]host[:port]. The password comes from --password-file,
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
    /// Seconds to wait for replies
    #[arg(long, global = true, default_value_t = 10.0)]
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
    /// Whether --broker was given on the command line.
    #[arg(skip)]
    pub broker_given: bool,
}
