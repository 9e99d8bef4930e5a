//! A CLI run's connection: an ephemeral client node (`cli-xxxxxxxx`) with an inbox.

use std::time::Duration;

use anyhow::{Context, Result};
use plastic_client::{BrokerUrl, Client, ClientOptions};
use plastic_proto::Topics;

use crate::args::Global;

pub struct Session {
    pub client: Client,
    pub timeout: Duration,
    pub json: bool,
    /// Time to live stamped on every request, if any.
    pub ttl: Option<f64>,
}

impl Session {
    pub async fn open(global: &Global) -> Result<Self> {
        let broker = BrokerUrl::parse(&global.broker)?;
        let topics = Topics::new(&global.prefix)?;
        let timeout = timeout(global)?;
        let mut opts = ClientOptions::new(broker.clone(), ClientOptions::ephemeral_name("cli"));
        opts.topics = topics;
        let (client, _deliveries) = Client::connect(opts);
        client
            .wait_connected(timeout.min(Duration::from_secs(10)))
            .await
            .with_context(|| {
                format!("cannot reach the broker at {broker} (is `plastic hub` running?)")
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

pub fn timeout(global: &Global) -> Result<Duration> {
    if !(global.timeout.is_finite() && global.timeout > 0.0 && global.timeout < 1e7) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(global.timeout))
}
