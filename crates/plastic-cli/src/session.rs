//! A CLI run's connection: an ephemeral client node (`cli-xxxxxxxx`, or `USER.xxxxxxxx` when
//! logged in to a hub with users) with an inbox.

use std::path::PathBuf;
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
        let timeout = timeout(global)?;
        let opts = client_options(global, "cli")?;
        let broker = opts.broker.clone();
        let (client, _deliveries) = Client::connect(opts);
        client
            .wait_connected(timeout.min(Duration::from_secs(10)))
            .await
            .with_context(|| {
                format!("cannot connect to the broker at {broker} (is `plastic hub` running?)")
            })?;
        if let Some(ttl) = global.ttl {
            if !(ttl.is_finite() && ttl > 0.0) {
                anyhow::bail!("--ttl must be a positive number of seconds");
            }
        }
        Ok(Session {
            client,
            timeout,
            json: global.json,
            ttl: global.ttl,
        })
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
    let broker = BrokerUrl::parse(&global.broker)?;
    let name = match &broker.username {
        Some(user) => ClientOptions::owned_name(user)
            .with_context(|| format!("user name `{user}` is not a valid client name"))?,
        None => ClientOptions::ephemeral_name(name_prefix),
    };
    let mut opts = ClientOptions::new(broker, name);
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
