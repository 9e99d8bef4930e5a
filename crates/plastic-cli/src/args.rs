//! The command line, as clap types. Every subcommand is thin: it parses, calls the libraries,
//! and prints.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "plastic",
    version,
    about = "Run code on a fleet of microcontrollers and small computers over MQTT"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Broker to use: mqtt[s]://[user:pass@]host[:port]
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
    /// Whether --broker was given on the command line.
    #[arg(skip)]
    pub broker_given: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: an embedded MQTT broker and a registry that prints nodes as they come and go
    Hub {
        /// Address for the embedded broker (port 0 picks a free port and prints it)
        #[arg(long, default_value = "127.0.0.1:1883")]
        listen: SocketAddr,
        /// Use the broker of --broker / PLASTIC_BROKER instead of embedding one (implied by
        /// --broker on the command line)
        #[arg(long)]
        external: bool,
        /// Allow listening beyond loopback without authentication or TLS: anyone who can
        /// reach the port can then run code on every node (or read passwords)
        #[arg(long)]
        insecure: bool,
        /// Users file: with it every connection must log in (default: $PLASTIC_HOME/users.toml
        /// if it exists)
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
        /// Serve MQTT over TLS with this certificate chain (PEM); see `plastic certs init`
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM)
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage the hub's users (the users file)
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Per-node keys for signed requests
    NodeKey {
        #[command(subcommand)]
        action: NodeKeyAction,
    },
    /// Certificates for the hub's TLS listener
    Certs {
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Run a node with simulated GPIO (ESP8266 pin set; pin 2 is the LED, active low)
    Node(NodeArgs),
    /// Run N simulated nodes in one process
    Sim {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Names are PREFIX-1 .. PREFIX-N
        #[arg(long, default_value = "sim")]
        name_prefix: String,
        /// Group to put every simulated node in (repeatable)
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Directory for the nodes' files (default: a fresh temporary directory)
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Start a hub and 3 simulated nodes, then walk through the seed's demo step by step
    Demo,
    /// List nodes: name, state, platform, address, since
    Ls,
    /// Evaluate a Python expression on nodes and print the result
    Eval { target: String, code: String },
    /// Execute Python statements on nodes and print what they printed
    Exec { target: String, code: String },
    /// Read or write GPIO pins
    Gpio {
        target: String,
        #[command(subcommand)]
        action: GpioAction,
    },
    /// Blink the on-board LED
    Blink {
        target: String,
        #[arg(long, default_value_t = 10)]
        times: u64,
        #[arg(long)]
        forever: bool,
        /// Seconds on
        #[arg(long, default_value_t = 0.5)]
        on: f64,
        /// Seconds off
        #[arg(long, default_value_t = 0.5)]
        off: f64,
    },
    /// Deploy a script and start it (it replaces a running script of the same name)
    Run {
        target: String,
        script: PathBuf,
        /// Script name (default: the file's stem)
        #[arg(long)]
        name: Option<String>,
    },
    /// Stop running scripts (all, or --name) and any blink, without restarting the node
    Stop {
        target: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Upload a file: plastic cp LOCAL TARGET:PATH
    Cp {
        local: PathBuf,
        destination: String,
        /// Raw bytes per chunk (default: 16 KiB, less for nodes that announce a smaller
        /// `max_payload`)
        #[arg(long)]
        chunk_size: Option<usize>,
    },
    /// Call a named function on nodes: ARGS is a JSON object (kwargs) or array (args)
    Call {
        target: String,
        function: String,
        args: Option<String>,
    },
    /// Send any message (a JSON object, seed dicts as written); waits for the reply unless --no-wait
    Send {
        target: String,
        message: String,
        #[arg(long)]
        no_wait: bool,
    },
    /// Ping nodes
    Ping { target: String },
    /// Show what nodes report about themselves
    Info { target: String },
    /// The MicroPython agent for boards
    Agent {
        #[command(subcommand)]
        action: AgentAction,
    },
    /// Measure latency, throughput, fan-out, memory and deploy speed (see docs/performance.md)
    Bench(BenchArgs),
    /// Follow presence changes, script output and node events
    Watch {
        /// Exit after this many lines
        #[arg(long)]
        count: Option<usize>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    #[arg(long)]
    pub name: String,
    /// Group to join (repeatable)
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Directory for the node's files (default: $PLASTIC_HOME/nodes/NAME, PLASTIC_HOME
    /// defaulting to ~/.plastic)
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Platform reported in presence
    #[arg(long, default_value = "sim")]
    pub platform: String,
    /// Run only requests signed with the key in this file (see `plastic node-key new`)
    #[arg(long, env = "PLASTIC_NODE_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Seconds a signed request's time stamp may differ from this node's clock
    #[arg(long, default_value_t = plastic_proto::sign::DEFAULT_MAX_SKEW)]
    pub max_skew: f64,
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user, or replace one of the same name. The password is read from standard input
    /// (one line) with --password-stdin, else a random one is made and printed once
    Add {
        name: String,
        /// node, operator, viewer or admin
        #[arg(long)]
        role: String,
        /// Capabilities: eval, exec, deploy, file, call, gpio.read, gpio.write, command
        #[arg(long, value_delimiter = ',')]
        allow: Vec<String>,
        /// Nodes the user may address: name globs (lab-*) or group:NAME (default: all)
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        #[arg(long)]
        password_stdin: bool,
        /// Users file (default: $PLASTIC_HOME/users.toml)
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// Remove a user
    Remove {
        name: String,
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// List users, roles and capabilities (never passwords)
    List {
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeKeyAction {
    /// Make a key for NODE, save it in the keys directory (for signing) and print it once (for
    /// the node: `plastic node --key-file`, or NODE_KEY in the agent's config.py)
    New {
        node: String,
        /// Replace an existing key
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Make a local CA and a server certificate for the hub, signed by it
    Init {
        /// Where to write ca.pem, ca.key, hub.pem and hub.key
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Host names or IP addresses the hub is reached by (repeatable; localhost and
        /// 127.0.0.1 are always included)
        #[arg(long = "name")]
        names: Vec<String>,
        /// Overwrite existing files
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GpioAction {
    /// Print every pin with its value, or only the pins given
    Read { pins: Vec<u32> },
    /// Set pins in order: PIN=VALUE ...
    Write {
        #[arg(required = true)]
        assignments: Vec<String>,
    },
}

#[derive(Debug, Args, Clone)]
pub struct BenchArgs {
    /// Small counts, for a smoke run (CI)
    #[arg(long)]
    pub quick: bool,
    /// Also write the figures as JSON to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Fan-out sizes (simulated nodes reached by one broadcast)
    #[arg(long, value_delimiter = ',', default_values_t = vec![1000, 10000])]
    pub fanout: Vec<usize>,
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// Write a folder ready for `mpremote cp -r DIR/. :` with config.py filled in
    Bundle(BundleArgs),
}

/// The board's broker is the global `--broker` (HOST[:PORT] or mqtt://[user:pass@]host[:port]).
#[derive(Debug, Args, Clone)]
pub struct BundleArgs {
    /// Folder to write (created; existing agent files in it are replaced)
    #[arg(long)]
    pub out: PathBuf,
    /// Wi-Fi network name (boards only; the unix port has no Wi-Fi)
    #[arg(long, default_value = "")]
    pub ssid: String,
    /// Wi-Fi password
    #[arg(long, default_value = "")]
    pub password: String,
    /// Node name (default: platform + hex of machine.unique_id())
    #[arg(long)]
    pub name: Option<String>,
    /// Group to join (repeatable)
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Arm machine.WDT with this timeout (0 = off)
    #[arg(long, default_value_t = 0)]
    pub watchdog_ms: u32,
    /// Compile the modules with mpy-cross (saves RAM on the board)
    #[arg(long)]
    pub mpy: bool,
    /// The node's key file (`plastic node-key new`): the board runs only signed requests
    #[arg(long)]
    pub node_key: Option<PathBuf>,
}
