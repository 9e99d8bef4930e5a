//! `plastic node-key new` and `plastic certs init`: the secrets of signed requests and TLS.

use std::process::ExitCode;

use anyhow::{Context, Result};
use plastic_client::KeyRing;
use plastic_proto::{NodeKey, NodeName};

use crate::args::{CertsAction, Global, NodeKeyAction};

pub fn node_key(global: &Global, action: NodeKeyAction) -> Result<ExitCode> {
    let NodeKeyAction::New { node, force } = action;
    let node = NodeName::parse(&node)?;
    let dir = crate::session::keys_dir(global);
    let path = KeyRing::path_for(&dir, &node);
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
    eprintln!(
        "saved in {} (requests to {node} are signed with it from now on)",
        path.display()
    );
    eprintln!("give the node this key: `plastic node --name {node} --key-file FILE`, or NODE_KEY in the agent's config.py:");
    println!("{}", key.to_hex());
    Ok(ExitCode::SUCCESS)
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
