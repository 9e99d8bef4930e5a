//! The registry: the hub's view of the fleet, from retained presence, printed as it changes.

use std::time::Duration;

use plastic_client::{BrokerUrl, Client, ClientError, ClientOptions, PresenceEvent};
use plastic_proto::{NodeState, Presence, Topics};

pub struct Registry {
    client: Client,
}

impl Registry {
    pub async fn connect(
        broker: BrokerUrl,
        topics: Topics,
        ca_file: Option<std::path::PathBuf>,
    ) -> Result<Self, ClientError> {
        // `hub.xxxxxxxx`: a name the hub's own user owns when the broker checks names.
        let mut opts =
            ClientOptions::new(broker, ClientOptions::owned_name(crate::users::HUB_USER)?);
        opts.topics = topics;
        opts.ca_file = ca_file;
        opts.presence_buffer = 16 * 1024;
        let (client, _deliveries) = Client::connect(opts);
        client.wait_connected(Duration::from_secs(10)).await?;
        client.track_presence().await?;
        Ok(Registry { client })
    }

    pub async fn nodes(&self) -> Result<Vec<Presence>, ClientError> {
        self.client.nodes(Duration::from_secs(5)).await
    }

    pub fn events(&self) -> tokio::sync::broadcast::Receiver<PresenceEvent> {
        self.client.presence_events()
    }

    /// The hub's own connection (it publishes the policy's refusal replies).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn shutdown(&self) {
        self.client.shutdown(None).await;
    }
}

/// One line for the hub's console.
pub fn describe_change(event: &PresenceEvent) -> String {
    describe(&event.current)
}

/// One node's presence as the hub console prints it, whether listed at start or changed since.
pub fn describe(p: &Presence) -> String {
    let verb = match p.state {
        NodeState::Online => "online",
        NodeState::Offline => "offline",
        NodeState::Lost => "lost (connection dropped)",
    };
    let groups = if p.groups.is_empty() {
        String::new()
    } else {
        format!(" groups={}", p.groups.join(","))
    };
    format!(
        "node {} {verb} [{} {}{groups}]",
        p.name, p.platform, p.version
    )
}
