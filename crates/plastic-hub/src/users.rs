//! The users file: who may connect to the hub, with which role and capabilities.
//!
//! TOML, written by `plastic user add`, read by `plastic hub`. Passwords are stored only as
//! argon2id PHC strings (`$argon2id$v=19$...`), never in clear.
//!
//! ```toml
//! [users.alice]
//! role = "operator"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! allow = ["eval", "exec", "gpio.read"]
//! nodes = ["lab-*", "group:lab"]
//!
//! [users.lab-1]
//! role = "node"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$..."
//! groups = ["lab"]          # the groups it may join (subscribe to)
//! nodes = ["lab-*"]         # whom it may reach with `allow`; none when absent
//! allow = ["eval"]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, SaltString};
use argon2::{Argon2, PasswordVerifier};
use plastic_proto::name::{validate_name, validate_set_name};
pub use plastic_proto::Capability;
use serde::{Deserialize, Serialize};

/// The hub's own connection (registry, refusal replies) uses this name; no user may take it.
pub const HUB_USER: &str = "hub";

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid users file: {reason}")]
    Parse { path: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A node: its own inbox, status, log and events; requests to other nodes only as `allow`
    /// and `nodes` say.
    Node,
    /// Sends requests to nodes, limited to `allow` and `nodes`; reads presence, logs, events.
    Operator,
    /// Reads presence, logs and events. Sends nothing.
    Viewer,
    /// Everything.
    Admin,
}

impl FromStr for Role {
    type Err = UsersError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "node" => Role::Node,
            "operator" => Role::Operator,
            "viewer" => Role::Viewer,
            "admin" => Role::Admin,
            _ => {
                return Err(UsersError::Invalid(format!(
                    "unknown role `{s}` (node, operator, viewer, admin)"
                )))
            }
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Node => "node",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Admin => "admin",
        })
    }
}

/// Which nodes a user may address: a name glob (`lab-*`) or `group:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum NodePattern {
    Glob(String),
    Group(String),
    /// `pool:NAME`: may send tasks to the pool (a name glob is not enough, as for groups).
    Pool(String),
}

impl TryFrom<String> for NodePattern {
    type Error = UsersError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if let Some(g) = s.strip_prefix("group:") {
            validate_set_name(g).map_err(|e| UsersError::Invalid(format!("group `{g}`: {e}")))?;
            return Ok(NodePattern::Group(g.to_owned()));
        }
        if let Some(p) = s.strip_prefix("pool:") {
            validate_set_name(p).map_err(|e| UsersError::Invalid(format!("pool `{p}`: {e}")))?;
            return Ok(NodePattern::Pool(p.to_owned()));
        }
        let literal = s.replace(['*', '?'], "a");
        if validate_name(&literal).is_err() && literal != "a" {
            return Err(UsersError::Invalid(format!(
                "node pattern `{s}`: node-name characters with `*` and `?` wildcards, group:NAME or pool:NAME"
            )));
        }
        Ok(NodePattern::Glob(s))
    }
}

impl From<NodePattern> for String {
    fn from(p: NodePattern) -> String {
        match p {
            NodePattern::Glob(g) => g,
            NodePattern::Group(g) => format!("group:{g}"),
            NodePattern::Pool(p) => format!("pool:{p}"),
        }
    }
}

impl NodePattern {
    /// Does `node` match? `memberships` are what it announced in its presence and its user
    /// may join: its groups as they are, its pools as `pool:NAME` (names have no `:`), so
    /// `pool:P` reaches each member of P by name too, as `group:G` does G's (an `abort` of a
    /// pool's task goes to its members).
    pub fn matches(&self, node: &str, memberships: &[String]) -> bool {
        match self {
            NodePattern::Glob(g) => glob_match(g.as_bytes(), node.as_bytes()),
            NodePattern::Group(g) => memberships.iter().any(|x| x == g),
            NodePattern::Pool(p) => memberships
                .iter()
                .any(|x| x.strip_prefix("pool:") == Some(p.as_str())),
        }
    }
}

/// `*` any run, `?` any one character; node names are ASCII.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            glob_match(rest, name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some((b'?', rest)), Some((_, n))) => glob_match(rest, n),
        (Some((p, rest)), Some((c, n))) if p == c => glob_match(rest, n),
        _ => false,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub role: Role,
    /// argon2id PHC string.
    pub password: String,
    /// Capabilities for requests (operators; nodes messaging other nodes). Admins have all.
    #[serde(default)]
    pub allow: BTreeSet<Capability>,
    /// Nodes the user may address. Empty means every node for operators, and *no node* for
    /// node users (a node's rights pass to whoever can exec on it, so they are opt-in).
    #[serde(default)]
    pub nodes: Vec<NodePattern>,
    /// Node users only: the groups the node may join (subscribe to `group/<g>/in`) and announce
    /// in its presence. Empty (and absent, in users files from before): none.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub groups: BTreeSet<String>,
    /// Node users only: the pools whose tasks the node may take (subscribe to, shared, as
    /// `$share/plastic/<prefix>/pool/<p>/in`). Empty: none.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pools: BTreeSet<String>,
}

impl User {
    /// May this user's requests go to every node (within `allow`)? Operators without `nodes`
    /// may; node users never without an explicit `nodes` list (`*` for all).
    pub fn reaches_everyone(&self) -> bool {
        self.nodes.is_empty() && self.role != Role::Node
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Users {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
}

impl Users {
    pub fn load(path: &Path) -> Result<Self, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let users: Users = toml::from_str(&text).map_err(|e| UsersError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        for (name, user) in &users.users {
            if let Some(other) = users.users.keys().find(|o| *o != name && owns(o, name)) {
                return Err(UsersError::Parse {
                    path: path.display().to_string(),
                    reason: format!(
                        "`{other}` owns the client names `{other}.*`, so `{name}` clashes with it"
                    ),
                });
            }
            validate_user_name(name).map_err(|e| UsersError::Parse {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for (what, set) in [("group", &user.groups), ("pool", &user.pools)] {
                for g in set {
                    validate_set_name(g).map_err(|e| UsersError::Parse {
                        path: path.display().to_string(),
                        reason: format!("user {name}: {what} `{g}`: {e}"),
                    })?;
                }
            }
            PasswordHash::new(&user.password).map_err(|e| UsersError::Parse {
                path: path.display().to_string(),
                reason: format!("user {name}: the password is not an argon2 hash ({e})"),
            })?;
        }
        Ok(users)
    }

    /// Loads `path`, or an empty set when the file does not exist yet.
    pub fn load_or_default(path: &Path) -> Result<Self, UsersError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Users::default())
        }
    }

    /// Writes atomically (temporary file, then rename), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let err = |source| UsersError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let text = format!(
            "# plastic users: written by `plastic user add`. Passwords are argon2id hashes.\n{}",
            toml::to_string_pretty(self).map_err(|e| UsersError::Invalid(e.to_string()))?
        );
        let tmp = path.with_extension("toml.tmp");
        write_private(&tmp, text.as_bytes()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Adds or replaces a user. No user's name may be one another user owns (`alice` owns
    /// `alice` and `alice.*`), or that user could read the other's inbox or take its client id.
    pub fn add(&mut self, name: &str, user: User) -> Result<(), UsersError> {
        validate_user_name(name)?;
        for other in self.users.keys().filter(|n| n.as_str() != name) {
            let clash = owns(other, name) || owns(name, other);
            if clash {
                return Err(UsersError::Invalid(format!(
                    "`{name}` and `{other}` clash: user `X` owns the client names `X` and `X.*`, \
                     so no user may be named like another user's clients"
                )));
            }
        }
        self.users.insert(name.to_owned(), user);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }
}

/// True when `user` owns the client name `name`: `user` itself or `user.<anything>`.
pub fn owns(user: &str, name: &str) -> bool {
    name == user
        || name
            .strip_prefix(user)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.'))
}

pub fn validate_user_name(name: &str) -> Result<(), UsersError> {
    // A node name's rules, reserved words included: a user named `all` would own the
    // broadcast inbox.
    plastic_proto::NodeName::parse(name)
        .map_err(|e| UsersError::Invalid(format!("user name `{name}`: {e}")))?;
    if name == HUB_USER {
        return Err(UsersError::Invalid(format!(
            "`{HUB_USER}` is the hub's own connection; pick another name"
        )));
    }
    Ok(())
}

/// 32 random hex digits.
pub fn random_secret() -> String {
    plastic_proto::new_message_id()
}

/// An argon2id hash (the argon2 crate's defaults: 19 MiB, 2 passes) with a random salt.
pub fn hash_password(password: &str) -> Result<String, UsersError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UsersError::Invalid(format!("hashing the password: {e}")))
}

/// A PHC string with the parameters [`hash_password`] uses, a random salt and a random output:
/// verifying any password against it costs what a real check costs, and never matches. Made
/// without hashing, so a hub starts without spending argon2's time and memory.
pub fn dummy_hash() -> String {
    use argon2::password_hash::{Output, Salt};
    let salt = SaltString::generate(&mut OsRng);
    let out: [u8; 32] = rand::random();
    let params = argon2::Params::default();
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: (&params).try_into().expect("default parameters encode"),
        salt: Some(Salt::from(&salt)),
        hash: Some(Output::new(&out).expect("32 bytes is a valid output")),
    };
    hash.to_string()
}

/// Verifies with the argon2 crate's own allocation (tests, tools). The hub verifies through
/// `hasher.rs` instead, with memory it maps and unmaps itself.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Creates (or truncates) a file only its owner can read: it holds secrets.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    // `mode` applies only when the file is created: tighten a file that was already there.
    #[cfg(unix)]
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role) -> User {
        User {
            role,
            password: hash_password("pw").unwrap(),
            allow: BTreeSet::new(),
            nodes: vec![],
            groups: BTreeSet::new(),
            pools: BTreeSet::new(),
        }
    }

    #[test]
    fn passwords_are_hashed_and_verified() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("s3cret"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("s3cret", "not a hash"));
    }

    #[test]
    fn file_round_trips_and_is_private() {
        let dir = std::env::temp_dir().join(format!("plastic-users-{}", std::process::id()));
        let path = dir.join("users.toml");
        let mut users = Users::default();
        let mut alice = user(Role::Operator);
        alice.allow = ["eval".parse().unwrap(), "gpio.read".parse().unwrap()].into();
        alice.nodes = vec!["lab-*".to_owned().try_into().unwrap()];
        users.add("alice", alice).unwrap();
        users.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"gpio.read\"") && text.contains("lab-*"),
            "{text}"
        );
        assert_eq!(Users::load(&path).unwrap(), users);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "users file readable by others: {mode:o}");
        }
        std::fs::write(
            &path,
            "[users.bob]\nrole = \"admin\"\npassword = \"plain\"\n",
        )
        .unwrap();
        let err = Users::load(&path).unwrap_err().to_string();
        assert!(err.contains("not an argon2 hash"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn users_files_from_before_groups_still_load() {
        let dir = std::env::temp_dir().join(format!("plastic-users-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users.toml");
        let hash = hash_password("pw").unwrap();
        std::fs::write(
            &path,
            format!("[users.esp-1]\nrole = \"node\"\npassword = \"{hash}\"\nallow = [\"eval\"]\n"),
        )
        .unwrap();
        let users = Users::load(&path).unwrap();
        let u = users.get("esp-1").unwrap();
        assert!(u.groups.is_empty() && u.nodes.is_empty() && !u.reaches_everyone());
        std::fs::write(
            &path,
            format!("[users.esp-1]\nrole = \"node\"\npassword = \"{hash}\"\ngroups = [\"a/b\"]\n"),
        )
        .unwrap();
        assert!(Users::load(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn names_and_patterns_are_checked() {
        let mut users = Users::default();
        assert!(users.add("hub", user(Role::Admin)).is_err());
        assert!(users.add("all", user(Role::Viewer)).is_err());
        assert!(users.add("group", user(Role::Viewer)).is_err());
        assert!(users.add("a/b", user(Role::Admin)).is_err());
        users.add("alice", user(Role::Operator)).unwrap();
        let err = users.add("alice.pi", user(Role::Node)).unwrap_err();
        assert!(err.to_string().contains("clash"), "{err}");
        let err = users.add("alice.bob", user(Role::Operator)).unwrap_err();
        assert!(err.to_string().contains("clash"), "{err}");
        users.add("alice-pi", user(Role::Node)).unwrap();
        assert!(NodePattern::try_from("lab-*".to_owned()).is_ok());
        assert!(NodePattern::try_from("*".to_owned()).is_ok());
        assert!(NodePattern::try_from("lab/#".to_owned()).is_err());
        assert!(NodePattern::try_from("group:a+b".to_owned()).is_err());
        assert!("root".parse::<Role>().is_err());
        assert!("sudo".parse::<Capability>().is_err());
    }

    #[test]
    fn globs_match_whole_names() {
        let p = NodePattern::Glob("lab-*".into());
        assert!(p.matches("lab-1", &[]));
        assert!(p.matches("lab-", &[]));
        assert!(!p.matches("prod-1", &[]));
        assert!(!p.matches("xlab-1", &[]));
        assert!(NodePattern::Glob("?-1".into()).matches("a-1", &[]));
        let g = NodePattern::Group("lab".into());
        assert!(g.matches("x", &["lab".into()]));
        assert!(!g.matches("lab", &[]));
        assert!(owns("alice", "alice.1a2b") && owns("alice", "alice"));
        assert!(!owns("alice", "alice-1") && !owns("alice", "alice.") && !owns("al", "alice"));
    }
}
