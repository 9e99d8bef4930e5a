//! TARGET: a node name, a comma list, a glob (`'sim-*'`), `group:NAME`, or `all`.

use anyhow::Result;
use plastic_client::Client;
use plastic_proto::{name::validate_name, NodeName, NodeState, Presence};

#[derive(Debug, Clone, PartialEq)]
pub enum TargetSpec {
    Names(Vec<NodeName>),
    Glob(String),
    Group(String),
    All,
}

impl TargetSpec {
    pub fn parse(text: &str) -> Result<Self> {
        if text == "all" {
            return Ok(TargetSpec::All);
        }
        if let Some(group) = text.strip_prefix("group:") {
            validate_name(group)?;
            return Ok(TargetSpec::Group(group.to_owned()));
        }
        if text.contains(['*', '?', '[']) {
            globset::Glob::new(text).map_err(|e| anyhow::anyhow!("invalid glob `{text}`: {e}"))?;
            return Ok(TargetSpec::Glob(text.to_owned()));
        }
        let names = text
            .split(',')
            .map(NodeName::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TargetSpec::Names(names))
    }

    /// True when replies should be prefixed with the node's name.
    pub fn is_multi(&self) -> bool {
        !matches!(self, TargetSpec::Names(n) if n.len() == 1)
    }
}

/// Who a request goes to, after looking at presence.
pub struct Resolved {
    /// Nodes expected to answer.
    pub nodes: Vec<NodeName>,
    /// For `all` and `group:`: one publish to this broadcast topic, addressed as `receiver`.
    pub broadcast: Option<(String, String)>,
    /// Named nodes that cannot be reached, with the reason (printed as failures).
    pub unreachable: Vec<(String, String)>,
}

pub async fn resolve(
    client: &Client,
    spec: &TargetSpec,
    timeout: std::time::Duration,
) -> Result<Resolved> {
    // A request to named nodes needs only their presence; globs, groups and `all` need the
    // whole fleet's.
    let fleet = match spec {
        TargetSpec::Names(names) => client.nodes_named(names, timeout).await?,
        _ => client.nodes(timeout).await?,
    };
    let online = |p: &&Presence| p.state == NodeState::Online;
    let names = |ps: Vec<&Presence>| {
        ps.into_iter()
            .filter_map(|p| NodeName::parse(&p.name).ok())
            .collect::<Vec<_>>()
    };
    let topics = client.topics();
    Ok(match spec {
        TargetSpec::All => Resolved {
            nodes: names(fleet.iter().filter(online).collect()),
            broadcast: Some((topics.all_inbox(), "all".into())),
            unreachable: vec![],
        },
        TargetSpec::Group(g) => Resolved {
            nodes: names(
                fleet
                    .iter()
                    .filter(online)
                    .filter(|p| p.groups.iter().any(|x| x == g))
                    .collect(),
            ),
            broadcast: Some((topics.group_inbox(g)?, format!("group:{g}"))),
            unreachable: vec![],
        },
        TargetSpec::Glob(pattern) => {
            let matcher = globset::Glob::new(pattern)?.compile_matcher();
            let nodes = names(
                fleet
                    .iter()
                    .filter(online)
                    .filter(|p| matcher.is_match(&p.name))
                    .collect(),
            );
            if nodes.is_empty() {
                // Like `group:` with no online member: nothing wrong with the command line.
                return Err(crate::exit::Failure::error(
                    crate::exit::FAILED,
                    "NoTarget",
                    format!("no online node matches `{pattern}`"),
                ));
            }
            Resolved {
                nodes,
                broadcast: None,
                unreachable: vec![],
            }
        }
        TargetSpec::Names(wanted) => {
            // A node just `lost` is often coming back (a blip, a takeover whose will arrived
            // late): give it the client's grace period before calling it unreachable.
            let lost: Vec<&NodeName> = wanted
                .iter()
                .filter(|n| {
                    fleet
                        .iter()
                        .any(|p| p.name == n.as_str() && p.state == NodeState::Lost)
                })
                .collect();
            let fleet = if lost.is_empty() {
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
                client.nodes_named(wanted, timeout).await?
            };
            let mut nodes = Vec::new();
            let mut unreachable = Vec::new();
            for name in wanted {
                match fleet.iter().find(|p| p.name == name.as_str()) {
                    Some(p) if p.state == NodeState::Online => nodes.push(name.clone()),
                    Some(p) => unreachable.push((
                        name.to_string(),
                        format!("node {name} is {}", p.state.as_str()),
                    )),
                    None => unreachable.push((
                        name.to_string(),
                        format!("unknown node `{name}`: no presence seen (see `plastic ls`)"),
                    )),
                }
            }
            Resolved {
                nodes,
                broadcast: None,
                unreachable,
            }
        }
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_target_form() {
        assert_eq!(TargetSpec::parse("all").unwrap(), TargetSpec::All);
        assert_eq!(
            TargetSpec::parse("group:lab").unwrap(),
            TargetSpec::Group("lab".into())
        );
        assert_eq!(
            TargetSpec::parse("sim-*").unwrap(),
            TargetSpec::Glob("sim-*".into())
        );
        let TargetSpec::Names(n) = TargetSpec::parse("a,b").unwrap() else {
            panic!()
        };
        assert_eq!(n.len(), 2);
        assert!(!TargetSpec::parse("pi-1").unwrap().is_multi());
        assert!(TargetSpec::parse("a/b").is_err());
        assert!(TargetSpec::parse("group:a+b").is_err());
        assert!(TargetSpec::parse("a,,b").is_err());
    }
}
