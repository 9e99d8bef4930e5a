//! `plastic board add`: everything a new board needs in one step: its node user on the hub,
//! optionally its node key, and the agent bundle with the hub's address and the credentials
//! filled in.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use plastic_client::BrokerUrl;
use plastic_hub::users::Role;
use plastic_proto::NodeName;

use super::agent::{write_bundle, BundleArgs};
use crate::global::Global;
use crate::session::users_file;

#[derive(Debug, Subcommand, Clone)]
pub enum BoardAction {
    /// Create a board's node user (and key), and write its agent bundle
    #[command(
        after_help = "Examples:\n  plastic board add esp-1 --hub 192.168.1.10 --ssid MyWifi --password secret\n  plastic board add esp-2 --hub 192.168.1.10:1883 --group lab --key --mpy\nthen: mpremote cp -r esp-1/. : + reset; plastic eval esp-1 '2+3'"
    )]
    Add(BoardAddArgs),
}

#[derive(Debug, Args, Clone)]
pub struct BoardAddArgs {
    /// The board's node name (also its user name and MQTT client id)
    pub name: String,
    /// The hub's board listener as the board reaches it (`plastic hub --board-listen`):
    /// HOST[:PORT], port 1883 if omitted; several hubs of one cluster separated by commas
    #[arg(long)]
    pub hub: String,
    /// Group to join (repeatable); also the groups its node user may join on the hub
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Pool to take tasks from (repeatable); also the pools its node user may join on the hub
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// Also make a node key: the board then runs only requests signed with it
    #[arg(long)]
    pub key: bool,
    /// Wi-Fi network name
    #[arg(long, default_value = "")]
    pub ssid: String,
    /// Wi-Fi password
    #[arg(long, default_value = "")]
    pub password: String,
    /// Folder to write (default: ./NAME)
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Compile the modules with mpy-cross (saves RAM on the board)
    #[arg(long)]
    pub mpy: bool,
    /// Replace an existing user (new password) and key of that name
    #[arg(long)]
    pub force: bool,
    /// Users file (default: $PLASTIC_HOME/users.toml)
    #[arg(long, env = "PLASTIC_USERS")]
    pub users: Option<PathBuf>,
}

pub fn run(global: &Global, action: BoardAction) -> Result<ExitCode> {
    let BoardAction::Add(args) = action;
    let name = NodeName::parse(&args.name)?;
    let mut brokers = BrokerUrl::parse_list(&args.hub)
        .with_context(|| format!("--hub `{}` is not HOST[:PORT][,HOST[:PORT]...]", args.hub))?;
    if brokers.iter().any(|b| b.tls || b.username.is_some()) {
        anyhow::bail!("--hub is the board listener's HOST[:PORT]: plain TCP, and the board's credentials are made here");
    }
    let users = users_file(args.users.clone());
    let password = plastic_proto::new_message_id();
    // The board's user may join the groups the board is configured with, and reaches no
    // other node.
    let groups = super::user::node_groups(Role::Node, &args.groups)?;
    let pools = super::user::node_pools(Role::Node, &args.pools)?;
    super::user::save_user(
        &users,
        name.as_str(),
        Role::Node,
        &password,
        super::user::Reach {
            groups,
            pools,
            ..Default::default()
        },
        args.force,
    )?;
    println!(
        "{name} (node) saved in {} (restart the hub to apply)",
        users.display()
    );
    let node_key = if args.key {
        let (path, _) = super::keys::new_node_key(global, &name, args.force)?;
        println!(
            "node key saved in {}: requests to {name} are signed",
            path.display()
        );
        Some(path)
    } else {
        None
    };
    for broker in &mut brokers {
        broker.username = Some(name.to_string());
        broker.password = Some(password.clone());
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(name.as_str()));
    let bundle = BundleArgs {
        out: out.clone(),
        ssid: args.ssid,
        password: args.password,
        name: Some(name.to_string()),
        groups: args.groups,
        pools: args.pools,
        watchdog_ms: None,
        mpy: args.mpy,
        node_key,
    };
    write_bundle(global, &bundle, &brokers)?;
    println!(
        "next: mpremote cp -r {}/. : + reset, then `plastic ls` shows {name} and `plastic eval {name} '2+3'` answers",
        out.display()
    );
    println!(
        "(the password is only in {}/config.py: keep that folder private)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
