//! `plastic node` and `plastic sim`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use plastic_node::gpio::SimGpio;
use plastic_node::{Node, NodeConfig};
use plastic_proto::{name::validate_set_name, NodeName, Topics};

use clap::Args;

use crate::global::Global;

mod credentials;
mod in_use;

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
        validate_set_name(g).with_context(|| format!("bad group `{g}`"))?;
    }
    // The password from --password-file, PLASTIC_PASSWORD, the credentials file or the URL.
    let mut brokers = crate::session::brokers(global)?;
    Ok(NodeConfig {
        broker: brokers.remove(0),
        alternates: brokers,
        name: NodeName::parse(name)?,
        topics: Topics::new(&global.prefix)?,
        platform: platform.to_owned(),
        groups,
        pools: vec![],
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
    // Started again by `credentials::hide` below: the password waits in a pipe.
    let handed_over = credentials::handed_over()?;
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
    // A password only this process knows (it was handed over): a restart must hand it on.
    let hand_on = handed_over.clone();
    match (handed_over, &config.broker.password) {
        (Some(password), _) => {
            for b in std::iter::once(&mut config.broker).chain(&mut config.alternates) {
                b.password = Some(password.clone());
            }
        }
        // While this is the only thread, before anything starts: the password must not stay
        // where Python on this node could read it (the environment, the command line).
        (None, Some(password)) => credentials::hide(password)?,
        (None, None) => {}
    }
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
    for p in &args.pools {
        validate_set_name(p).with_context(|| format!("bad pool `{p}`"))?;
    }
    config.pools = args.pools.clone();
    let signed = config.key.is_some();
    let broker = config.broker.clone();
    // Refuse before connecting: a confined node that could not be confined must not run.
    if args.confine {
        if let Err(why) = plastic_node::confine::check(plastic_node::confine::probe()) {
            anyhow::bail!("{why}");
        }
    }
    // A name live elsewhere would make both nodes take the session from each other forever.
    if let Some(why) = in_use::name_in_use_isolated(&config) {
        return Err(crate::exit::Failure::error(
            crate::exit::FAILED,
            "NameInUse",
            why,
        ));
    }
    // A confined node restarts in this process after a `reset` (see below).
    let restart_config = config.clone();
    // Starting reads the TLS roots and opens the root; no thread or Python starts yet.
    let node = Node::start(config)
        .with_context(|| format!("cannot use {} for the node's files", root.display()))?;
    // Python's `open('data.txt')` on a board reads the node's own files; here too. (Not in
    // `plastic sim`, whose nodes share one process and so one working directory.)
    let files_root = node.files_root().to_path_buf();
    // Where relative arguments point, for the restart after a `reset`.
    let started_in = std::env::current_dir()?;
    std::env::set_current_dir(&files_root)
        .with_context(|| format!("cannot change to {}", files_root.display()))?;
    let confined = if args.confine {
        let ports: Vec<u16> = std::iter::once(&broker)
            .chain(&restart_config.alternates)
            .map(|b| b.port)
            .collect();
        let mut plan = plastic_node::confine::Plan::for_node(&files_root, &ports);
        if std::iter::once(&broker)
            .chain(&restart_config.alternates)
            .any(|b| b.tls)
        {
            // Read again when the node restarts after a `reset`; certificates are public.
            plan.allow_tls_roots(restart_config.ca_file.as_deref());
        }
        let credentials = crate::session::credentials_file();
        for (what, path) in [
            ("--key-file", args.key_file.as_ref()),
            ("--password-file", global.password_file.as_ref()),
            ("the credentials file", Some(&credentials)),
        ] {
            let Some(path) = path.and_then(|p| p.canonicalize().ok()) else {
                continue;
            };
            if let Some((_, allowed)) = plan.exposes(&path) {
                anyhow::bail!(
                    "{what} {} is under {}, which Python on a confined node can read; keep \
                     credentials outside the node's root",
                    path.display(),
                    allowed.display()
                );
            }
        }
        let confined = plastic_node::confine::apply(&plan).map_err(anyhow::Error::msg)?;
        Some(confined)
    } else {
        None
    };
    eprintln!(
        "plastic node {}: connecting to {broker}, files in {}{}",
        args.name,
        root.display(),
        if signed { ", signed requests only" } else { "" }
    );
    if let Some(confined) = &confined {
        eprintln!("plastic node {}: {confined}", args.name);
    }
    let mut node = node;
    loop {
        let name = args.name.clone();
        let mut announcements = node.announcements();
        tokio::spawn(async move {
            while announcements.changed().await.is_ok() {
                eprintln!("plastic node {name}: online");
            }
        });
        let ended = node.run(shutdown_signal()).await;
        eprintln!("plastic node {}: offline", args.name);
        if ended != plastic_node::Ended::Reset {
            break;
        }
        if confined.is_some() {
            // Confined, no program may start, this one included (and its key and password
            // files are out of reach): start the node afresh in this process instead, from
            // the configuration in memory. A Python thread stuck in native code stays.
            eprintln!("plastic node {}: restarting in this process", args.name);
            node = Node::start(restart_config.clone())
                .with_context(|| format!("cannot restart the node in {}", root.display()))?;
            continue;
        }
        // `reset` restarts the node program: this process becomes a fresh one (new boot id,
        // new presence; every thread, stuck Python too, is gone).
        eprintln!("plastic node {}: restarting", args.name);
        let e = match &hand_on {
            Some(password) => credentials::restart_handing_over(&started_in, password),
            None => plastic_node::node::restart_process(&started_in).into(),
        };
        anyhow::bail!("cannot restart the node program: {e}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_sim(global: &Global, args: SimArgs) -> Result<ExitCode> {
    let SimArgs {
        nodes: count,
        name_prefix: prefix,
        groups,
        pools,
        root,
    } = args;
    let files = crate::fdlimit::raise();
    if count as u64 + 256 > files {
        eprintln!(
            "plastic sim: warning: {count} nodes need about {} open files and this process may open {files} (ulimit -n)",
            count + 256
        );
    }
    if count == 0 {
        anyhow::bail!("--nodes must be at least 1");
    }
    for p in &pools {
        validate_set_name(p).with_context(|| format!("bad pool `{p}`"))?;
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
        config.pools = pools.clone();
        let node = Node::start(config.clone())?;
        all_announced.push(node.announcements());
        let mut stop = stop_tx.subscribe();
        // A `reset` restarts the node in-process: a new `Node` (new boot id and presence, a
        // fresh namespace on the shared interpreter).
        tasks.spawn(async move {
            let mut node = node;
            loop {
                let stopped = stop.recv();
                if node
                    .run(async move {
                        let _ = stopped.await;
                    })
                    .await
                    != plastic_node::Ended::Reset
                {
                    break;
                }
                match Node::start(config.clone()) {
                    Ok(fresh) => node = fresh,
                    Err(e) => {
                        eprintln!("plastic sim: {} cannot restart: {e}", config.name);
                        break;
                    }
                }
            }
        });
    }
    eprintln!(
        "plastic sim: starting {count} nodes {prefix}-1..{prefix}-{count} on {}",
        crate::session::brokers(global)
            .map(|b| plastic_client::brokers_to_string(&b))
            .unwrap_or_default()
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
    /// Pool to take tasks from (repeatable): each request to `pool:NAME` goes to one member
    #[arg(long = "pool")]
    pub pools: Vec<String>,
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
    /// Confine the node with Linux Landlock: files under its root only (plus what it needs to
    /// reach the broker, read-only), no programs, TCP to the broker's port only. Refuses to
    /// start where the kernel cannot. A password from the environment or the broker URL is
    /// removed from both, confined or not (docs/security.md)
    #[arg(long)]
    pub confine: bool,
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
    /// Pool every simulated node takes tasks from (repeatable)
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// Directory for the nodes' files (default: a fresh temporary directory)
    #[arg(long)]
    pub root: Option<PathBuf>,
}
