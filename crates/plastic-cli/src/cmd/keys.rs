//! `plastic node-key new` and `plastic certs init`: the secrets of signed requests and TLS.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use plastic_client::KeyRing;
use plastic_proto::{NodeKey, NodeName};

use clap::Subcommand;

use crate::global::Global;

pub fn node_key(global: &Global, action: NodeKeyAction) -> Result<ExitCode> {
    let NodeKeyAction::New { node, force } = action;
    let node = NodeName::parse(&node)?;
    let (path, key) = new_node_key(global, &node, force)?;
    eprintln!(
        "saved in {} (requests to {node} are signed with it from now on)",
        path.display()
    );
    eprintln!("give the node this key: `plastic node --name {node} --key-file FILE`, or NODE_KEY in the agent's config.py:");
    println!("{}", key.to_hex());
    Ok(ExitCode::SUCCESS)
}

/// Makes a key for `node` and saves it (mode 0600) in the keys directory, where clients find
/// it to sign requests to that node.
pub fn new_node_key(
    global: &Global,
    node: &NodeName,
    force: bool,
) -> Result<(std::path::PathBuf, NodeKey)> {
    let dir = crate::session::keys_dir(global);
    let path = KeyRing::path_for(&dir, node);
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists; pass --force to replace it (the node must then get the new key)",
            path.display()
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = NodeKey::generate();
    plastic_hub::users::write_private(&path, format!("{}\n", key.to_hex()).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((path, key))
}

pub fn certs(action: CertsAction) -> Result<ExitCode> {
    let CertsAction::Init { dir, names, force } = action;
    let files = plastic_hub::certs::init(&dir, &names, force)?;
    println!(
        "CA certificate:  {} (give it to clients: --ca or PLASTIC_CA; boards: BROKER_CA)",
        files.ca_cert.display()
    );
    println!(
        "CA key:          {} (keep it secret; only needed to sign more certificates)",
        files.ca_key.display()
    );
    println!("hub certificate: {}", files.hub_cert.display());
    println!("hub key:         {}", files.hub_key.display());
    println!(
        "run: plastic hub --listen 0.0.0.0:8883 --tls-cert {} --tls-key {}",
        files.hub_cert.display(),
        files.hub_key.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum NodeKeyAction {
    /// Make a key for NODE, save it in the keys directory (for signing) and print it once (for
    /// the node: `plastic node --key-file`, or NODE_KEY in the agent's config.py)
    New {
        /// The node the key is for
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
