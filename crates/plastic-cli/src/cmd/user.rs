//! `plastic user add | remove | list`: the hub's users file.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use plastic_hub::users::{hash_password, Capability, NodePattern, Role, User, Users};

use crate::session::users_file;
use clap::Subcommand;

pub fn run(action: UserAction) -> Result<ExitCode> {
    match action {
        UserAction::Add {
            name,
            role,
            allow,
            nodes,
            groups,
            pools,
            password_stdin,
            users,
        } => add(
            &name,
            &role,
            &allow,
            &nodes,
            (&groups, &pools),
            password_stdin,
            users,
        ),
        UserAction::Remove { name, users } => {
            let path = users_file(users);
            let mut all = Users::load(&path)?;
            if all.users.remove(&name).is_none() {
                anyhow::bail!("no user `{name}` in {}", path.display());
            }
            all.save(&path)?;
            println!(
                "removed {name} from {} (restart the hub to apply)",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        UserAction::List { users } => {
            let path = users_file(users);
            let all = Users::load(&path)?;
            let rows: Vec<[String; 6]> = all
                .users
                .iter()
                .map(|(name, u)| {
                    [
                        name.clone(),
                        u.role.to_string(),
                        allowed(u),
                        if u.role == Role::Admin || u.reaches_everyone() {
                            "*".into()
                        } else if u.nodes.is_empty() {
                            "-".into()
                        } else {
                            u.nodes
                                .iter()
                                .map(|p| String::from(p.clone()))
                                .collect::<Vec<_>>()
                                .join(",")
                        },
                        if u.groups.is_empty() {
                            "-".into()
                        } else {
                            u.groups.iter().cloned().collect::<Vec<_>>().join(",")
                        },
                        if u.pools.is_empty() {
                            "-".into()
                        } else {
                            u.pools.iter().cloned().collect::<Vec<_>>().join(",")
                        },
                    ]
                })
                .collect();
            super::ls::print_table(
                &["USER", "ROLE", "ALLOW", "NODES", "GROUPS", "POOLS"],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn allowed(u: &User) -> String {
    match u.role {
        Role::Admin => "everything".into(),
        Role::Viewer => "-".into(),
        _ if u.allow.is_empty() => "-".into(),
        _ => u
            .allow
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(","),
    }
}

fn add(
    name: &str,
    role: &str,
    allow: &[String],
    nodes: &[String],
    (groups, pools): (&[String], &[String]),
    password_stdin: bool,
    users: Option<PathBuf>,
) -> Result<ExitCode> {
    let role: Role = role.parse()?;
    let allow = allow
        .iter()
        .filter(|c| !c.is_empty())
        .map(|c| c.parse::<Capability>())
        .collect::<Result<BTreeSet<_>, _>>()?;
    if matches!(role, Role::Viewer | Role::Admin) && !allow.is_empty() {
        anyhow::bail!("--allow is for operators and nodes: a viewer sends nothing, an admin may do everything");
    }
    let nodes = nodes
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| NodePattern::try_from(n.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = node_groups(role, groups)?;
    let pools = node_pools(role, pools)?;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.chars().count() < 8 {
            anyhow::bail!("the password must be at least 8 characters");
        }
        (line, false)
    } else {
        (plastic_proto::new_message_id(), true)
    };
    let operator_without_allow = role == Role::Operator && allow.is_empty();
    let path = users_file(users);
    save_user(
        &path,
        name,
        role,
        &password,
        Reach {
            allow,
            nodes,
            groups,
            pools,
        },
        true,
    )?;
    println!("{name} ({role}) saved in {}", path.display());
    if generated {
        // Printed once; only its hash is kept.
        println!("password: {password}");
    }
    if operator_without_allow {
        let all: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
        eprintln!(
            "warning: operator {name} has no --allow, so it may send nothing to any node; the \
             capabilities an operator can have: {} (run `plastic user add {name} --role operator \
             --allow {} --nodes '*'` again with the ones it needs)",
            all.join(", "),
            all.join(",")
        );
    }
    if role == Role::Node {
        println!(
            "the node connects with --broker mqtt[s]://{name}@HOST --name {name} --password-file FILE (FILE holding the password, mode 0600; or PLASTIC_PASSWORD)"
        );
        let user = Users::load(&path)?;
        if let Some(u) = user.get(name) {
            if !u.allow.is_empty() && u.nodes.is_empty() {
                println!("note: without --nodes, {name} reaches no node with its --allow (--nodes '*' for all)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Add a user, or replace one of the same name. The password is read from standard input
    /// (one line) with --password-stdin, else a random one is made and printed once
    Add {
        /// The user name: a node's user is the node's name
        name: String,
        /// node, operator, viewer or admin
        #[arg(long)]
        role: String,
        /// Capabilities, comma separated: eval, exec, deploy, file, call, gpio.read, gpio.write,
        /// command
        #[arg(long, value_delimiter = ',')]
        allow: Vec<String>,
        /// Nodes the user may address: name globs (lab-*), group:NAME or pool:NAME. Default for operators:
        /// all; for node users: none (whoever can exec on a node has its user's rights)
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Node users: the groups the node may join (the hub refuses subscriptions to other
        /// groups' topics). Default: none
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Node users: the pools whose tasks the node may take (`plastic node --pool`).
        /// Default: none
        #[arg(long, value_delimiter = ',')]
        pools: Vec<String>,
        /// Read the password from standard input (one line) instead of making one
        #[arg(long)]
        password_stdin: bool,
        /// Users file (default: $PLASTIC_HOME/users.toml)
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// Remove a user
    Remove {
        /// The user to remove
        name: String,
        /// Users file (default: $PLASTIC_HOME/users.toml)
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// List users, roles and capabilities (never passwords)
    List {
        /// Users file (default: $PLASTIC_HOME/users.toml)
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
}

/// The groups a node user may join, checked; other roles take none.
pub fn node_groups(role: Role, groups: &[String]) -> Result<BTreeSet<String>> {
    let groups: BTreeSet<String> = groups.iter().filter(|g| !g.is_empty()).cloned().collect();
    if role != Role::Node && !groups.is_empty() {
        anyhow::bail!("--groups is for node users: the groups the node may join");
    }
    for g in &groups {
        plastic_proto::name::validate_set_name(g)
            .map_err(|e| anyhow::anyhow!("group `{g}`: {e}"))?;
    }
    Ok(groups)
}

/// The pools a node user may take tasks from, checked; other roles take none.
pub fn node_pools(role: Role, pools: &[String]) -> Result<BTreeSet<String>> {
    let pools: BTreeSet<String> = pools.iter().filter(|p| !p.is_empty()).cloned().collect();
    if role != Role::Node && !pools.is_empty() {
        anyhow::bail!("--pools is for node users: the pools the node takes tasks from");
    }
    for p in &pools {
        plastic_proto::name::validate_set_name(p)
            .map_err(|e| anyhow::anyhow!("pool `{p}`: {e}"))?;
    }
    Ok(pools)
}

/// What a user may do beyond its role: capabilities, the nodes it may address and (node
/// users) the groups it may join.
#[derive(Debug, Default, Clone)]
pub struct Reach {
    pub allow: BTreeSet<Capability>,
    pub nodes: Vec<NodePattern>,
    pub groups: BTreeSet<String>,
    pub pools: BTreeSet<String>,
}

/// Adds (or, with `replace`, replaces) a user in the users file at `path`, keeping only the
/// password's argon2id hash.
pub fn save_user(
    path: &std::path::Path,
    name: &str,
    role: Role,
    password: &str,
    reach: Reach,
    replace: bool,
) -> Result<()> {
    let mut all = Users::load_or_default(path)?;
    if !replace && all.get(name).is_some() {
        anyhow::bail!(
            "{name} is already a user in {}; pass --force to replace it (and its password)",
            path.display()
        );
    }
    all.add(
        name,
        User {
            role,
            password: hash_password(password)?,
            allow: reach.allow,
            nodes: reach.nodes,
            groups: reach.groups,
            pools: reach.pools,
        },
    )?;
    all.save(path)?;
    Ok(())
}
