//! Before a node connects with its name as client id: is that name live elsewhere? Two nodes
//! of one name would take the MQTT session from each other forever (each reconnect kicks the
//! other), so the second refuses to start instead.
//!
//! A throwaway client reads the name's retained presence. `online` alone is not proof: after
//! a crash the broker counts the old connection alive for up to 1.5 x its keepalive, and the
//! will (`lost`) fires only then. So the name is in use only if a node of that name answers a
//! `ping` within [`PROBE`]: a live node answers (even a keyed node, with an error reply); a
//! crashed one cannot, and this start takes its session over at once (its `lost` and our
//! `online` follow). A probe that cannot connect or read is skipped, and a node logging in as
//! a hub user is not probed (that user may connect only as the node itself): the check is
//! best effort and never stops a legitimate start.

use std::time::Duration;

use plastic_client::{Client, ClientOptions};
use plastic_node::NodeConfig;
use plastic_proto::command::Ping;
use plastic_proto::{NodeName, NodeState, Operation};

/// How long the live node has to answer.
const PROBE: Duration = Duration::from_secs(3);

/// [`name_in_use`] on a thread and a runtime of its own, both ended when this returns. Name
/// resolution runs on tokio's blocking pool, whose threads outlive the lookup; a node about to
/// be confined must still be the process's only thread (Landlock restricts the calling thread
/// and its future children only). Blocks for at most a few [`PROBE`]s, before the node starts.
pub fn name_in_use_isolated(config: &NodeConfig) -> Option<String> {
    let (broker, alternates, topics, ca_file, name) = (
        config.broker.clone(),
        config.alternates.clone(),
        config.topics.clone(),
        config.ca_file.clone(),
        config.name.clone(),
    );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        // Dropping the runtime at the end of this closure joins its blocking threads.
        runtime.block_on(name_in_use(broker, alternates, topics, ca_file, &name))
    })
    .join()
    .ok()
    .flatten()
}

/// `Some(sentence)` if a node of this name is live elsewhere.
async fn name_in_use(
    broker: plastic_client::BrokerUrl,
    alternates: Vec<plastic_client::BrokerUrl>,
    topics: plastic_proto::Topics,
    ca_file: Option<std::path::PathBuf>,
    name: &NodeName,
) -> Option<String> {
    // A hub's node user may connect only under its own name (and a refused probe would spend
    // its login budget): no probe then.
    if broker.username.is_some() {
        return None;
    }
    let client_name = ClientOptions::ephemeral_name("probe");
    let mut opts = ClientOptions::new(broker, client_name);
    opts.alternates = alternates;
    opts.topics = topics;
    opts.ca_file = ca_file;
    let (client, _deliveries) = Client::connect(opts);
    let verdict = async {
        client.wait_connected(PROBE).await.ok()?;
        let presence = client
            .nodes_named(std::slice::from_ref(name), PROBE)
            .await
            .ok()?
            .into_iter()
            .next()?;
        if presence.state != NodeState::Online {
            return None;
        }
        // Any reply, an error included, means a live node holds the name.
        client.request(name, Ping.to_request(), PROBE).await.ok()?;
        let since = presence.since;
        let ago = (plastic_proto::unix_seconds(std::time::SystemTime::now()) - since).max(0.0);
        Some(format!(
            "name {name} is in use by {} since {} s ago (boot {}): stop that node, or give this one another --name",
            crate::output::shown(presence.address.as_deref().unwrap_or("an unknown address")),
            ago.round(),
            crate::output::shown(presence.boot.as_deref().unwrap_or("?")),
        ))
    }
    .await;
    client.shutdown(None).await;
    verdict
}
