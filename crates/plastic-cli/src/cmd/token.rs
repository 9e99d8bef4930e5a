//! `plastic token new | list | revoke`: API tokens for scripts (`plastic_hub::tokens`), kept
//! hashed in `tokens.toml` beside the users file. The hub re-reads the file when it changes:
//! a revoked token stops working at once, without a restart.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use clap::Subcommand;
use plastic_hub::tokens::Tokens;
use plastic_hub::users::Users;

use crate::session::users_file;

#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Make a token that acts as USER over HTTP (printed once; only its hash is kept)
    New {
        /// The hub user the token acts as (an operator, viewer or admin)
        user: String,
        /// How long it works: 30d, 12h (default: until revoked)
        #[arg(long, value_parser = super::hub::parse_duration)]
        expires: Option<Duration>,
        /// Users file (the tokens file is beside it) [default: $PLASTIC_HOME/users.toml]
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// List tokens (ids, users, expiry; never the tokens)
    List {
        /// Users file (the tokens file is beside it) [default: $PLASTIC_HOME/users.toml]
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
    /// Revoke a token by its id
    Revoke {
        /// The token's id (`plastic token list`)
        id: String,
        /// Users file (the tokens file is beside it) [default: $PLASTIC_HOME/users.toml]
        #[arg(long, env = "PLASTIC_USERS")]
        users: Option<PathBuf>,
    },
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub fn run(action: TokenAction) -> Result<ExitCode> {
    match action {
        TokenAction::New {
            user,
            expires,
            users,
        } => {
            let users_path = users_file(users);
            let all = Users::load(&users_path)?;
            let Some(record) = all.get(&user) else {
                anyhow::bail!(
                    "no user `{user}` in {}; add one with `plastic user add`",
                    users_path.display()
                );
            };
            if record.role == plastic_hub::users::Role::Node {
                anyhow::bail!("{user} is a node user; tokens are for people and scripts (operators, viewers, admins)");
            }
            let path = users_path.with_file_name("tokens.toml");
            let mut tokens = Tokens::load_or_default(&path)?;
            let expires_at = expires.map(|d| now() + d.as_secs());
            let (id, token) = tokens.create(&user, now(), expires_at);
            tokens.save(&path)?;
            println!("id: {id}");
            println!("token: {token}");
            println!(
                "(shown once; use it as `Authorization: Bearer TOKEN`; revoke with `plastic token revoke {id}`)"
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::List { users } => {
            let path = users_file(users).with_file_name("tokens.toml");
            let tokens = Tokens::load_or_default(&path)?;
            if tokens.tokens.is_empty() {
                println!("no tokens in {}", path.display());
            }
            for (id, t) in &tokens.tokens {
                let expiry = match t.expires {
                    None => "never expires".to_owned(),
                    Some(e) if e <= now() => "expired".to_owned(),
                    Some(e) => format!("expires in {}", human(e - now())),
                };
                println!("{id}  {}  {expiry}", crate::output::shown(&t.user));
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::Revoke { id, users } => {
            let path = users_file(users).with_file_name("tokens.toml");
            let mut tokens = Tokens::load_or_default(&path)?;
            if !tokens.revoke(&id) {
                anyhow::bail!(
                    "no token `{}` in {}",
                    crate::output::shown(&id),
                    path.display()
                );
            }
            tokens.save(&path)?;
            println!("revoked {id} (the hub stops accepting it now)");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn human(secs: u64) -> String {
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s.div_ceil(60)),
    }
}
