//! TARGET, the one way every front end names nodes: a node name, a comma list, a glob
//! (`'sim-*'`), `group:NAME`, `pool:NAME` or `all`. The CLI and the Python package both parse
//! and resolve targets here, so a target means the same thing everywhere.
//!
//! Resolution is a pure function of the fleet's presence ([`resolve_in`]); how a front end
//! learns the fleet (one round trip per CLI run, a mirror kept up to date in Python) is its
//! own business.

use plastic_proto::{name::validate_set_name, NodeName, NodeState, Presence, ProtoError, Topics};

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Names(Vec<NodeName>),
    Glob(String),
    Group(String),
    /// Exactly one online member takes each request (docs/protocol.md, "Pools").
    Pool(String),
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("invalid glob `{pattern}`: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error(transparent)]
    Name(#[from] ProtoError),
}

impl Target {
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let text = text.trim();
        if text == "all" {
            return Ok(Target::All);
        }
        if let Some(group) = text.strip_prefix("group:") {
            validate_set_name(group)?;
            return Ok(Target::Group(group.to_owned()));
        }
        if let Some(pool) = text.strip_prefix("pool:") {
            validate_set_name(pool)?;
            return Ok(Target::Pool(pool.to_owned()));
        }
        if text.contains(['*', '?', '[']) {
            matcher(text)?;
            return Ok(Target::Glob(text.to_owned()));
        }
        let names = text
            .split(',')
            .map(|n| NodeName::parse(n.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Target::Names(names))
    }

    /// True when outcomes should be labelled with the node's name (a pool's are too: which
    /// member ran it is worth seeing).
    pub fn is_multi(&self) -> bool {
        !matches!(self, Target::Names(n) if n.len() == 1)
    }
}

fn matcher(pattern: &str) -> Result<globset::GlobMatcher, TargetError> {
    globset::Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| TargetError::BadGlob {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}

/// Who a request goes to, after looking at presence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolved {
    /// Nodes expected to answer (for a pool: its online members, one of which will).
    pub nodes: Vec<NodeName>,
    /// For `all` and `group:`: one publish to this broadcast topic, addressed as `receiver`.
    pub broadcast: Option<(String, String)>,
    /// For `pool:`: the pool's name; the request goes to its topic, once.
    pub pool: Option<String>,
    /// Named nodes that cannot be reached, with the reason.
    pub unreachable: Vec<(String, String)>,
}

/// Resolves `target` against `fleet` (every presence known). Named nodes that are not online
/// are `unreachable` with the reason; an empty `nodes` otherwise means nobody is targeted.
pub fn resolve_in(
    target: &Target,
    fleet: &[Presence],
    topics: &Topics,
) -> Result<Resolved, TargetError> {
    let online = |p: &&Presence| p.state == NodeState::Online;
    let names = |ps: &mut dyn Iterator<Item = &Presence>| {
        ps.filter_map(|p| NodeName::parse(&p.name).ok())
            .collect::<Vec<_>>()
    };
    Ok(match target {
        Target::All => Resolved {
            nodes: names(&mut fleet.iter().filter(online)),
            broadcast: Some((topics.all_inbox(), "all".into())),
            ..Resolved::default()
        },
        Target::Group(g) => Resolved {
            nodes: names(
                &mut fleet
                    .iter()
                    .filter(online)
                    .filter(|p| p.groups.iter().any(|x| x == g)),
            ),
            broadcast: Some((topics.group_inbox(g)?, format!("group:{g}"))),
            ..Resolved::default()
        },
        Target::Pool(pool) => Resolved {
            nodes: names(
                &mut fleet
                    .iter()
                    .filter(online)
                    .filter(|p| p.pools.iter().any(|x| x == pool)),
            ),
            pool: Some(pool.clone()),
            ..Resolved::default()
        },
        Target::Glob(pattern) => {
            let matcher = matcher(pattern)?;
            Resolved {
                nodes: names(
                    &mut fleet
                        .iter()
                        .filter(online)
                        .filter(|p| matcher.is_match(&p.name)),
                ),
                ..Resolved::default()
            }
        }
        Target::Names(wanted) => {
            let mut resolved = Resolved::default();
            for name in wanted {
                match fleet.iter().find(|p| p.name == name.as_str()) {
                    Some(p) if p.state == NodeState::Online => {
                        if !resolved.nodes.contains(name) {
                            resolved.nodes.push(name.clone());
                        }
                    }
                    Some(p) => resolved.unreachable.push((
                        name.to_string(),
                        format!("node {name} is {}", p.state.as_str()),
                    )),
                    None => resolved.unreachable.push((
                        name.to_string(),
                        format!("unknown node `{name}`: no presence seen (is it running? `plastic ls` lists the nodes)"),
                    )),
                }
            }
            resolved
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence(name: &str, state: NodeState, groups: &[&str], pools: &[&str]) -> Presence {
        Presence {
            name: name.into(),
            state,
            platform: "sim".into(),
            version: "0".into(),
            protocol: 1,
            address: None,
            groups: groups.iter().map(|s| s.to_string()).collect(),
            pools: pools.iter().map(|s| s.to_string()).collect(),
            since: 0.0,
            max_payload: None,
            window: None,
            uptime: None,
            mem_free: None,
            boot: None,
        }
    }

    #[test]
    fn parses_every_target_form() {
        assert_eq!(Target::parse("all").unwrap(), Target::All);
        assert_eq!(
            Target::parse("group:lab").unwrap(),
            Target::Group("lab".into())
        );
        assert_eq!(
            Target::parse("pool:workers").unwrap(),
            Target::Pool("workers".into())
        );
        assert_eq!(
            Target::parse("sim-*").unwrap(),
            Target::Glob("sim-*".into())
        );
        let Target::Names(n) = Target::parse("a, b").unwrap() else {
            panic!()
        };
        assert_eq!(n.len(), 2);
        assert!(!Target::parse("pi-1").unwrap().is_multi());
        assert!(Target::parse("pool:w").unwrap().is_multi());
        for bad in [
            "a/b",
            "group:a+b",
            "pool:",
            "pool:a/b",
            "a,,b",
            "[",
            "pool",
            "pool:events",
            "group:in",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolves_against_presence() {
        let fleet = [
            presence("a-1", NodeState::Online, &["lab"], &["workers"]),
            presence("a-2", NodeState::Lost, &["lab"], &["workers"]),
            presence("b-1", NodeState::Online, &[], &["other"]),
        ];
        let topics = Topics::default();
        let r = |t: &str| resolve_in(&Target::parse(t).unwrap(), &fleet, &topics).unwrap();
        let names = |r: Resolved| r.nodes.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(r("all")), ["a-1", "b-1"]);
        assert_eq!(r("group:lab").broadcast.unwrap().1, "group:lab");
        let pool = r("pool:workers");
        assert_eq!(pool.pool.as_deref(), Some("workers"));
        assert_eq!(names(pool), ["a-1"], "online members only");
        assert_eq!(names(r("a-*")), ["a-1"]);
        let named = r("a-1,a-2,zz,a-1");
        assert_eq!(named.nodes.len(), 1);
        assert_eq!(
            named.unreachable,
            [
                ("a-2".to_string(), "node a-2 is lost".to_string()),
                (
                    "zz".to_string(),
                    "unknown node `zz`: no presence seen (is it running? `plastic ls` lists the nodes)".to_string()
                )
            ]
        );
    }
}
