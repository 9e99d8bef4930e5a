//! TARGET for the CLI: parsed and resolved by `plastic_client::target` (a node name, a comma
//! list, a glob, `group:NAME`, `pool:NAME` or `all`); this file only fetches the presence it
//! needs and turns "nobody" into the CLI's failures.

use anyhow::Result;
use plastic_client::{resolve_in, Client};
use plastic_proto::{NodeName, NodeState};

pub use plastic_client::{Resolved, Target as TargetSpec};

/// Resolves TARGET with the client's rules (`plastic_client::resolve_in`), after asking the
/// broker for the presence it needs: named nodes need only theirs; globs, groups, pools and
/// `all` need the whole fleet's. A glob or pool that reaches no online node is a failure
/// (`NoTarget`), as is a group with none, later, in the caller.
pub async fn resolve(
    client: &Client,
    spec: &TargetSpec,
    timeout: std::time::Duration,
) -> Result<Resolved> {
    let fleet = match spec {
        TargetSpec::Names(names) => {
            let fleet = client.nodes_named(names, timeout).await?;
            // A node just `lost` is often coming back (a blip, a takeover whose will arrived
            // late): give it the client's grace period before calling it unreachable.
            let lost: Vec<&NodeName> = names
                .iter()
                .filter(|n| {
                    fleet
                        .iter()
                        .any(|p| p.name == n.as_str() && p.state == NodeState::Lost)
                })
                .collect();
            if lost.is_empty() {
                fleet
            } else {
                let mut events = client.presence_events();
                let until = tokio::time::Instant::now() + plastic_client::LOST_GRACE;
                let back = |c: &Client| {
                    lost.iter().all(|n| {
                        c.presence_of(n.as_str())
                            .is_some_and(|p| p.state == NodeState::Online)
                    })
                };
                while !back(client) {
                    match tokio::time::timeout_at(until, events.recv()).await {
                        Ok(Ok(_))
                        | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                        _ => break,
                    }
                }
                client.nodes_named(names, timeout).await?
            }
        }
        _ => client.nodes(timeout).await?,
    };
    let resolved = resolve_in(spec, &fleet, client.topics())?;
    let nobody = match spec {
        TargetSpec::Glob(pattern) => Some(format!("no online node matches `{pattern}`")),
        TargetSpec::Pool(pool) => Some(format!("no member of pool `{pool}` is online")),
        _ => None,
    };
    if let (Some(message), true) = (nobody, resolved.nodes.is_empty()) {
        // Like `group:` with no online member: nothing wrong with the command line.
        return Err(crate::exit::Failure::error(
            crate::exit::FAILED,
            "NoTarget",
            message,
        ));
    }
    Ok(resolved)
}

/// The one online node `target` names, for commands that talk to a single node (`repl`,
/// downloads); `what` says what they do, for the refusal of a glob or a group.
pub async fn one_node(
    client: &Client,
    target: &str,
    what: &str,
    timeout: std::time::Duration,
) -> Result<NodeName> {
    let spec = TargetSpec::parse(target)?;
    if spec.is_multi() {
        anyhow::bail!("{what} one node at a time (`{target}` can name several)");
    }
    let resolved = resolve(client, &spec, timeout).await?;
    if let Some((node, why)) = resolved.unreachable.first() {
        return Err(crate::exit::Failure::error(
            crate::exit::FAILED,
            "NodeNotOnline",
            format!("{node}: {why}"),
        ));
    }
    resolved
        .nodes
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no online node is targeted by `{target}`"))
}
