//! A CLI run's connection: an ephemeral client node (`cli-xxxxxxxx`, or `USER.xxxxxxxx` when
//! logged in to a hub with users) with an inbox.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use plastic_client::{BrokerUrl, Client, ClientOptions};
use plastic_proto::Topics;

use crate::global::Global;

pub struct Session {
    pub client: Client,
    pub timeout: Duration,
    pub json: bool,
    /// Time to live stamped on every request, if any.
    pub ttl: Option<f64>,
}

impl Session {
    pub async fn open(global: &Global) -> Result<Self> {
        Ok(Self::open_listening(global).await?.0)
    }

    /// [`Session::open`], keeping what arrives on the topics the session subscribes to later
    /// (`Client::subscribe`): node logs for `run --follow`.
    pub async fn open_listening(
        global: &Global,
    ) -> Result<(
        Self,
        tokio::sync::mpsc::UnboundedReceiver<plastic_client::Delivery>,
    )> {
        let timeout = timeout(global)?;
        let opts = client_options(global, "cli")?;
        let (client, deliveries) = Client::connect(opts);
        client
            .wait_connected(timeout.min(Duration::from_secs(10)))
            .await
            .map_err(crate::exit::broker_failure)?;
        if let Some(ttl) = global.ttl {
            if !(ttl.is_finite() && ttl > 0.0) {
                anyhow::bail!("--ttl must be a positive number of seconds");
            }
        }
        let session = Session {
            client,
            timeout,
            json: global.json,
            ttl: global.ttl,
        };
        Ok((session, deliveries))
    }

    /// Stamps the session's time to live on a request.
    pub fn with_ttl(&self, mut request: plastic_proto::Request) -> plastic_proto::Request {
        if let Some(ttl) = self.ttl {
            request.fields.insert("ttl".into(), ttl.into());
        }
        request
    }

    pub async fn close(self) {
        self.client.shutdown(None).await;
    }
}

/// `$PLASTIC_HOME`, by default `~/.plastic`: node files, keys, users, the CA.
pub fn plastic_home() -> PathBuf {
    std::env::var_os("PLASTIC_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".plastic")
        })
}

pub fn keys_dir(global: &Global) -> PathBuf {
    global
        .keys
        .clone()
        .unwrap_or_else(|| plastic_home().join("keys"))
}

pub fn users_file(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| plastic_home().join("users.toml"))
}

/// Options for a client of this CLI run: broker, prefix, CA, keys, and a name the broker's user
/// owns (`USER.xxxxxxxx`) or `<prefix>-xxxxxxxx` without a user.
pub fn client_options(global: &Global, name_prefix: &str) -> Result<ClientOptions> {
    let mut brokers = brokers(global)?;
    let broker = brokers.remove(0);
    let name = match &broker.username {
        Some(user) => ClientOptions::owned_name(user)
            .with_context(|| format!("user name `{user}` is not a valid client name"))?,
        None => ClientOptions::ephemeral_name(name_prefix),
    };
    let mut opts = ClientOptions::new(broker, name);
    opts.alternates = brokers;
    opts.topics = Topics::new(&global.prefix)?;
    opts.ca_file = ca_file(global);
    opts.keys = Arc::new(plastic_client::KeyRing::in_dir(keys_dir(global)));
    Ok(opts)
}

pub fn ca_file(global: &Global) -> Option<PathBuf> {
    global.ca.clone().or_else(|| {
        let default = plastic_home().join("ca.pem");
        default.exists().then_some(default)
    })
}

pub fn timeout(global: &Global) -> Result<Duration> {
    if !(global.timeout.is_finite() && global.timeout > 0.0 && global.timeout < 1e7) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(global.timeout))
}

/// Where the broker password came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// `--password-file` (or `PLASTIC_PASSWORD_FILE`).
    File,
    /// `PLASTIC_PASSWORD`.
    Environment,
    /// `$PLASTIC_HOME/credentials`.
    Credentials,
    /// `user:password@` in the broker URL: visible to other local users.
    Url,
    /// No password.
    None,
}

/// The broker of this run with its user and password filled in: the password from
/// `--password-file` (its first line), else `PLASTIC_PASSWORD`, else the entry for the
/// broker's `host:port` in `$PLASTIC_HOME/credentials` (mode 0600), else the URL. A password
/// in the URL still works but draws a warning on stderr (once per run): command lines are
/// readable by every local user. Every client command connects through this; `plastic node`
/// may too. The first broker of a `--broker URL,URL,...` list.
pub fn broker_url(global: &Global) -> Result<BrokerUrl> {
    Ok(brokers(global)?.remove(0))
}

/// Every broker of `--broker URL[,URL...]` (at least one), the first as [`broker_url`] says;
/// the others share its user and password (one cluster, one set of users).
pub fn brokers(global: &Global) -> Result<Vec<BrokerUrl>> {
    let (brokers, source) = resolve_brokers(
        &global.broker,
        global.password_file.as_deref(),
        std::env::var("PLASTIC_PASSWORD").ok(),
        &credentials_file(),
    )?;
    if source == PasswordSource::Url {
        warn_password_in_url();
    }
    Ok(brokers)
}

/// `$PLASTIC_HOME/credentials`: broker passwords by `host:port`, readable by its owner only.
pub fn credentials_file() -> PathBuf {
    plastic_home().join("credentials")
}

fn warn_password_in_url() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        eprintln!(
            "warning: the broker URL holds a password: every local user can read it in \
             /proc/PID/cmdline (ps) while this runs, and PLASTIC_BROKER in your environment; \
             use --password-file FILE, PLASTIC_PASSWORD or {} instead (docs/security.md, \
             \"Client credentials\")",
            credentials_file().display()
        );
    });
}

/// One entry of the credentials file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    user: Option<String>,
    password: String,
}

/// [`brokers`] without the process's environment and warnings, for tests: the first broker's
/// user and password resolved, then given to the others.
fn resolve_brokers(
    list: &str,
    password_file: Option<&Path>,
    env_password: Option<String>,
    credentials: &Path,
) -> Result<(Vec<BrokerUrl>, PasswordSource)> {
    let mut brokers = BrokerUrl::parse_list(list)?;
    let (first, source) =
        resolve_broker(brokers[0].clone(), password_file, env_password, credentials)?;
    for b in &mut brokers[1..] {
        b.username = first.username.clone();
        b.password = first.password.clone();
    }
    brokers[0] = first;
    Ok((brokers, source))
}

fn resolve_broker(
    mut broker: BrokerUrl,
    password_file: Option<&Path>,
    env_password: Option<String>,
    credentials: &Path,
) -> Result<(BrokerUrl, PasswordSource)> {
    let (password, source) = if let Some(path) = password_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the password file {}", path.display()))?;
        let first = text.lines().next().unwrap_or_default().to_owned();
        (Some(first), PasswordSource::File)
    } else if let Some(password) = env_password {
        (Some(password), PasswordSource::Environment)
    } else if broker.password.is_some() {
        (broker.password.take(), PasswordSource::Url)
    } else if let Some(entry) = credentials_entry(credentials, &broker)? {
        if broker.username.is_none() {
            broker.username = entry.user;
        }
        (Some(entry.password), PasswordSource::Credentials)
    } else {
        (None, PasswordSource::None)
    };
    if password.is_some() && broker.username.is_none() {
        anyhow::bail!(
            "a broker password needs a user name: --broker mqtt[s]://USER@HOST[:PORT] (or \
             `user = \"USER\"` in {})",
            credentials.display()
        );
    }
    broker.password = password;
    Ok((broker, source))
}

/// The credentials file's entry for `broker`: `["USER@HOST:PORT"]`, else `["HOST:PORT"]`,
/// else `["HOST"]`, whose `user` (if any) is the URL's (if any). A file other users may read or
/// write is refused.
fn credentials_entry(path: &Path, broker: &BrokerUrl) -> Result<Option<Entry>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} holds passwords but other users may read or change it (mode {mode:03o}); \
                 run: chmod 600 {}",
                path.display(),
                path.display()
            );
        }
    }
    let mut entries: BTreeMap<String, Entry> = toml::from_str(&text)
        .with_context(|| format!("{} is not a valid credentials file", path.display()))?;
    let address = format!("{}:{}", broker.host, broker.port);
    let mut keys = Vec::new();
    if let Some(user) = &broker.username {
        keys.push(format!("{user}@{address}"));
    }
    keys.push(address);
    keys.push(broker.host.clone());
    for key in keys {
        if let Some(entry) = entries.remove(&key) {
            let same_user = match (&broker.username, &entry.user) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            if same_user {
                return Ok(Some(entry));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(text: &str, mode: u32) -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    const FILE: &str = r#"
["hub.lan:8883"]
user = "alice"
password = "from-file-for-alice"

["bob@hub.lan:8883"]
password = "bobs"

["other.lan"]
password = "no-user"
"#;

    fn resolve(
        url: &str,
        env: Option<&str>,
        path: &Path,
    ) -> Result<(Option<String>, Option<String>, PasswordSource)> {
        let (b, source) = resolve_brokers(url, None, env.map(str::to_owned), path)?;
        Ok((b[0].username.clone(), b[0].password.clone(), source))
    }

    #[test]
    fn the_password_comes_from_the_safe_places_first() {
        let (_dir, path) = credentials(FILE, 0o600);
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(
            resolve("mqtts://hub.lan", None, &path).unwrap(),
            (
                s("alice"),
                s("from-file-for-alice"),
                PasswordSource::Credentials
            )
        );
        assert_eq!(
            resolve("mqtts://bob@hub.lan:8883", None, &path).unwrap(),
            (s("bob"), s("bobs"), PasswordSource::Credentials)
        );
        assert_eq!(
            resolve("mqtts://carol@hub.lan", None, &path).unwrap(),
            (s("carol"), None, PasswordSource::None),
            "alice's entry is not carol's"
        );
        assert_eq!(
            resolve("mqtts://alice@hub.lan", Some("env"), &path).unwrap(),
            (s("alice"), s("env"), PasswordSource::Environment)
        );
        assert_eq!(
            resolve("mqtts://alice:inurl@hub.lan", None, &path).unwrap(),
            (s("alice"), s("inurl"), PasswordSource::Url)
        );
        let pw = path.with_file_name("pw");
        std::fs::write(&pw, "from-password-file\nignored\n").unwrap();
        let (b, source) =
            resolve_brokers("mqtt://alice:inurl@h", Some(&pw), s("env"), &path).unwrap();
        assert_eq!(
            (b[0].password.as_deref(), source),
            (Some("from-password-file"), PasswordSource::File)
        );
        // A cluster's list: the first broker's user and password serve every one of them.
        let (b, source) =
            resolve_brokers("mqtts://hub.lan,hub2.lan:8884", None, None, &path).unwrap();
        assert_eq!(source, PasswordSource::Credentials);
        assert_eq!(b.len(), 2);
        for broker in &b {
            assert_eq!(
                (broker.username.as_deref(), broker.password.as_deref()),
                (Some("alice"), Some("from-file-for-alice"))
            );
        }
        assert_eq!((b[1].host.as_str(), b[1].port), ("hub2.lan", 8884));
        let err = resolve("mqtt://other.lan", None, &path).unwrap_err();
        assert!(err.to_string().contains("needs a user name"), "{err}");
        assert_eq!(
            resolve("mqtt://127.0.0.1", None, &path.with_file_name("none")).unwrap(),
            (None, None, PasswordSource::None)
        );
    }

    #[test]
    fn a_credentials_file_others_can_read_is_refused() {
        let (_dir, path) = credentials(FILE, 0o644);
        let err = resolve("mqtts://hub.lan", None, &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mode 644") && err.contains("chmod 600"),
            "{err}"
        );
        // Not read at all when the password is given another way.
        assert!(resolve("mqtts://alice@hub.lan", Some("env"), &path).is_ok());
    }
}
