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
            password_stdin,
            users,
        } => add(&name, &role, &allow, &nodes, password_stdin, users),
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
            let rows: Vec<[String; 4]> = all
                .users
                .iter()
                .map(|(name, u)| {
                    [
                        name.clone(),
                        u.role.to_string(),
                        allowed(u),
                        if u.nodes.is_empty() {
                            "*".into()
                        } else {
                            u.nodes
                                .iter()
                                .map(|p| String::from(p.clone()))
                                .collect::<Vec<_>>()
                                .join(",")
                        },
                    ]
                })
                .collect();
            super::ls::print_table(&["USER", "ROLE", "ALLOW", "NODES"], &rows);
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
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.len() < 8 {
            anyhow::bail!("the password must be at least 8 characters");
        }
        (line, false)
    } else {
        (plastic_proto::new_message_id(), true)
    };
    let path = users_file(users);
    save_user(&path, name, role, &password, allow, nodes, true)?;
    println!("{name} ({role}) saved in {}", path.display());
    if generated {
        // Printed once; only its hash is kept.
        println!("password: {password}");
    }
    if role == Role::Node {
        println!(
            "the node connects with --broker mqtt[s]://{name}:PASSWORD@HOST and --name {name}"
        );
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
        /// Nodes the user may address: name globs (lab-*) or group:NAME (default: all)
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
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

/// Adds (or, with `replace`, replaces) a user in the users file at `path`, keeping only the
/// password's argon2id hash.
pub fn save_user(
    path: &std::path::Path,
    name: &str,
    role: Role,
    password: &str,
    allow: BTreeSet<Capability>,
    nodes: Vec<NodePattern>,
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
            allow,
            nodes,
        },
    )?;
    all.save(path)?;
    Ok(())
}
