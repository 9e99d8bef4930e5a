//! `plastic forget NODE`: removes a stale node's retained presence (an `offline` or `lost`
//! node that will not come back), so `ls` stops listing it. Refused while the node is online.

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::{NodeName, NodeState};
use rumqttc::QoS;

use crate::exit::{Failure, FAILED};
use crate::global::Global;
use crate::output::shown;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic forget old-pi        # no longer listed by `plastic ls`\n\nOn a hub with users, only an admin may clear a node's presence (a retained message on\nPREFIX/NODE/status); the hub drops it for anyone else and this command says so."
)]
pub struct ForgetArgs {
    /// The node whose presence to remove (one name; it must not be online)
    pub node: String,
}

pub async fn run(global: &Global, args: ForgetArgs) -> Result<ExitCode> {
    let name = NodeName::parse(&args.node)?;
    let s = Session::open(global).await?;
    let before = s
        .client
        .nodes_named(std::slice::from_ref(&name), s.timeout)
        .await?;
    let Some(presence) = before.into_iter().next() else {
        s.close().await;
        return Err(Failure::error(
            FAILED,
            "NoTarget",
            format!("unknown node `{name}`: no presence to forget (see `plastic ls`)"),
        ));
    };
    if presence.state == NodeState::Online {
        s.close().await;
        return Err(Failure::error(
            FAILED,
            "NodeOnline",
            format!(
                "node {name} is online (at {}): forget removes only a stale node's presence; stop the node first",
                shown(presence.address.as_deref().unwrap_or("-"))
            ),
        ));
    }
    let topic = s.client.topics().status(&name);
    s.client
        .publish(&topic, Vec::new(), QoS::AtLeastOnce, true)
        .await?;
    // And the recent log the hub kept for it (`plastic logs`).
    let tail = s.client.topics().log_recent(name.as_str());
    s.client
        .publish(&tail, Vec::new(), QoS::AtLeastOnce, true)
        .await?;
    s.client.sync(s.timeout).await?;
    s.close().await;
    // A broker that does not let us clear it drops the publish without a word: look again,
    // from a fresh connection (the retained message is what a new subscriber gets).
    let check = Session::open(global).await?;
    let after = check
        .client
        .nodes_named(std::slice::from_ref(&name), check.timeout)
        .await?;
    check.close().await;
    if !after.is_empty() {
        return Err(Failure::error(
            FAILED,
            "NotAllowed",
            format!(
                "the broker kept {name}'s presence: on a hub with users only an admin may clear it (the retained message on {topic})"
            ),
        ));
    }
    if global.json {
        println!(
            "{}",
            serde_json::json!({"node": name.as_str(), "ok": true, "result": "forgotten"})
        );
    } else {
        println!("forgot {name} (it was {})", presence.state.as_str());
    }
    Ok(ExitCode::SUCCESS)
}
