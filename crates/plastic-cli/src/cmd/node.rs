//! `plastic node` and `plastic sim`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use plastic_client::BrokerUrl;
use plastic_node::gpio::SimGpio;
use plastic_node::{Node, NodeConfig};
use plastic_proto::{name::validate_name, NodeName, Topics};

use clap::Args;

use crate::global::Global;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub fn node_config(
    global: &Global,
    name: &str,
    groups: Vec<String>,
    root: PathBuf,
    platform: &str,
) -> Result<NodeConfig> {
    for g in &groups {
        validate_name(g).with_context(|| format!("bad group `{g}`"))?;
    }
    Ok(NodeConfig {
        broker: BrokerUrl::parse(&global.broker)?,
        name: NodeName::parse(name)?,
        topics: Topics::new(&global.prefix)?,
        platform: platform.to_owned(),
        groups,
        root,
        gpio: Arc::new(SimGpio::esp8266()),
        interpreter: None,
        key: None,
        max_skew: plastic_proto::sign::DEFAULT_MAX_SKEW,
        ca_file: crate::session::ca_file(global),
    })
}

fn default_root(name: &str) -> PathBuf {
    crate::session::plastic_home().join("nodes").join(name)
}

pub async fn run_node(global: &Global, args: NodeArgs) -> Result<ExitCode> {
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| default_root(&args.name));
    let mut config = node_config(
        global,
        &args.name,
        args.groups,
        root.clone(),
        &args.platform,
    )?;
    if let Some(path) = &args.key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the node key {}", path.display()))?;
        config.key = Some(
            plastic_proto::NodeKey::from_hex(&text)
                .with_context(|| format!("{}", path.display()))?,
        );
    }
    if !(args.max_skew.is_finite() && args.max_skew > 0.0) {
        anyhow::bail!("--max-skew must be a positive number of seconds");
    }
    config.max_skew = args.max_skew;
    let signed = config.key.is_some();
    let broker = config.broker.clone();
    let node = Node::start(config)
        .with_context(|| format!("cannot use {} for the node's files", root.display()))?;
    // Python's `open('data.txt')` on a board reads the node's own files; here too. (Not in
    // `plastic sim`, whose nodes share one process and so one working directory.)
    let files_root = node.files_root().to_path_buf();
    std::env::set_current_dir(&files_root)
        .with_context(|| format!("cannot change to {}", files_root.display()))?;
    eprintln!(
        "plastic node {}: connecting to {broker}, files in {}{}",
        args.name,
        root.display(),
        if signed { ", signed requests only" } else { "" }
    );
    let name = args.name.clone();
    let mut announcements = node.announcements();
    tokio::spawn(async move {
        while announcements.changed().await.is_ok() {
            eprintln!("plastic node {name}: online");
        }
    });
    node.run(shutdown_signal()).await;
    eprintln!("plastic node {}: offline", args.name);
    Ok(ExitCode::SUCCESS)
}

pub async fn run_sim(global: &Global, args: SimArgs) -> Result<ExitCode> {
    let SimArgs {
        nodes: count,
        name_prefix: prefix,
        groups,
        root,
    } = args;
    if count == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    let base = root.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("plastic-sim-{}", std::process::id()))
    });
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    let mut all_announced = Vec::with_capacity(count);
    // One interpreter for the whole simulated fleet, a namespace per node: an interpreter
    // costs ~2.5 MB, thousands of them would not fit.
    let interpreter = plastic_node::python::Interpreter::new();
    for i in 1..=count {
        let name = format!("{prefix}-{i}");
        let mut config = node_config(global, &name, groups.clone(), base.join(&name), "sim")?;
        config.interpreter = Some(interpreter.clone());
        let node = Node::start(config)?;
        all_announced.push(node.announcements());
        let mut stop = stop_tx.subscribe();
        tasks.spawn(node.run(async move {
            let _ = stop.recv().await;
        }));
    }
    eprintln!(
        "plastic sim: starting {count} nodes {prefix}-1..{prefix}-{count} on {}",
        global.broker
    );
    tokio::spawn(async move {
        for mut rx in all_announced {
            if rx.wait_for(|n| *n > 0).await.is_err() {
                return;
            }
        }
        eprintln!("plastic sim: {count} nodes online");
    });
    shutdown_signal().await;
    let _ = stop_tx.send(());
    while tasks.join_next().await.is_some() {}
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args, Clone)]
pub struct NodeArgs {
    /// The node's name: 1 to 64 of A-Za-z0-9_.- (also its MQTT client id)
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

/// `plastic sim`'s options.
#[derive(Debug, Args, Clone)]
pub struct SimArgs {
    /// How many nodes to simulate
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Names are PREFIX-1 .. PREFIX-N
    #[arg(long, default_value = "sim")]
    pub name_prefix: String,
    /// Group to put every simulated node in (repeatable)
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Directory for the nodes' files (default: a fresh temporary directory)
    #[arg(long)]
    pub root: Option<PathBuf>,
}
