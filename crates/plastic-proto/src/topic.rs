//! The topic layout under a configurable prefix (default `plastic`).
//!
//! ```text
//! <prefix>/<node>/in           a node's inbox (QoS 1)
//! <prefix>/<node>/status       retained presence; last will says `lost`
//! <prefix>/<node>/log          script output and node log lines
//! <prefix>/<node>/events       what scripts publish with plastic.publish()
//! <prefix>/all/in              broadcast to every node
//! <prefix>/group/<group>/in    broadcast to one group
//! <prefix>/pool/<pool>/in      a task for one member of a pool ($share/plastic/...)
//! ```

use crate::name::validate_name;
use crate::{NodeName, ProtoError};

pub const DEFAULT_PREFIX: &str = "plastic";

/// The shared-subscription prefix of a pool's members: share name `plastic`.
pub const POOL_SHARE: &str = "$share/plastic/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

/// What a topic under the prefix is, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicKind {
    Inbox(String),
    Status(String),
    Log(String),
    /// `<prefix>/<node>/log/recent`: the hub's retained tail of a node's log and events.
    LogRecent(String),
    Events(String),
    /// `<prefix>/<node>/events/<sub>`: an event with a script-chosen sub-topic.
    EventsSub(String, String),
    AllInbox,
    GroupInbox(String),
    /// `<prefix>/pool/<pool>/in`: a task for one member of a pool.
    PoolInbox(String),
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            prefix: DEFAULT_PREFIX.to_owned(),
        }
    }
}

impl Topics {
    /// A prefix is one or more `/`-separated levels, each a valid name.
    pub fn new(prefix: &str) -> Result<Self, ProtoError> {
        if prefix.split('/').any(|level| validate_name(level).is_err()) {
            return Err(ProtoError::Invalid {
                field: "prefix",
                reason: format!("`{prefix}` must be `/`-separated levels of A-Za-z0-9_.-"),
            });
        }
        Ok(Topics {
            prefix: prefix.to_owned(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn inbox(&self, node: &NodeName) -> String {
        format!("{}/{}/in", self.prefix, node)
    }
    pub fn status(&self, node: &NodeName) -> String {
        format!("{}/{}/status", self.prefix, node)
    }
    pub fn log(&self, node: &NodeName) -> String {
        format!("{}/{}/log", self.prefix, node)
    }
    pub fn events(&self, node: &NodeName) -> String {
        format!("{}/{}/events", self.prefix, node)
    }
    /// The hub's retained tail of a node's recent log lines and events (docs/protocol.md).
    pub fn log_recent(&self, node: &str) -> String {
        format!("{}/{}/log/recent", self.prefix, node)
    }
    pub fn all_inbox(&self) -> String {
        format!("{}/all/in", self.prefix)
    }
    pub fn group_inbox(&self, group: &str) -> Result<String, ProtoError> {
        crate::name::validate_set_name(group)?;
        Ok(format!("{}/group/{}/in", self.prefix, group))
    }
    /// A pool's inbox: what senders publish to (docs/protocol.md, "Pools").
    pub fn pool_inbox(&self, pool: &str) -> Result<String, ProtoError> {
        crate::name::validate_set_name(pool)?;
        Ok(format!("{}/pool/{}/in", self.prefix, pool))
    }
    /// What a pool's members subscribe to: the pool's inbox as an MQTT shared subscription,
    /// so the broker hands each task to one member.
    pub fn pool_share(&self, pool: &str) -> Result<String, ProtoError> {
        Ok(format!("{POOL_SHARE}{}", self.pool_inbox(pool)?))
    }
    /// Subscription filter for every node's presence.
    pub fn all_status(&self) -> String {
        format!("{}/+/status", self.prefix)
    }
    pub fn all_logs(&self) -> String {
        format!("{}/+/log", self.prefix)
    }
    pub fn all_events(&self) -> String {
        format!("{}/+/events/#", self.prefix)
    }

    /// An events topic, optionally with a sub-topic chosen by a script. The sub-topic may have
    /// several levels but no wildcards and no empty levels.
    pub fn events_sub(&self, node: &NodeName, sub: &str) -> Result<String, ProtoError> {
        if sub.is_empty() {
            return Ok(self.events(node));
        }
        if sub.len() > 128
            || sub
                .split('/')
                .any(|l| l.is_empty() || l.contains(['+', '#', '\0']))
        {
            return Err(ProtoError::Invalid {
                field: "topic",
                reason: format!("`{sub}` must be non-empty levels without `+`, `#` or NUL"),
            });
        }
        Ok(format!("{}/{}/events/{}", self.prefix, node, sub))
    }

    /// Parses a topic under this prefix. Returns `None` for anything else.
    pub fn parse(&self, topic: &str) -> Option<TopicKind> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let mut levels = rest.splitn(3, '/');
        let first = levels.next()?;
        let second = levels.next()?;
        let third = levels.next();
        match (first, second, third) {
            ("all", "in", None) => Some(TopicKind::AllInbox),
            ("group", g, Some("in")) => Some(TopicKind::GroupInbox(g.to_owned())),
            ("pool", p, Some("in")) => Some(TopicKind::PoolInbox(p.to_owned())),
            (node, "in", None) => Some(TopicKind::Inbox(node.to_owned())),
            (node, "status", None) => Some(TopicKind::Status(node.to_owned())),
            (node, "log", None) => Some(TopicKind::Log(node.to_owned())),
            (node, "log", Some("recent")) => Some(TopicKind::LogRecent(node.to_owned())),
            (node, "events", None) => Some(TopicKind::Events(node.to_owned())),
            (node, "events", Some(sub)) => {
                Some(TopicKind::EventsSub(node.to_owned(), sub.to_owned()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_topic() {
        let t = Topics::default();
        let n = NodeName::parse("pi-1").unwrap();
        assert_eq!(t.inbox(&n), "plastic/pi-1/in");
        assert_eq!(t.parse(&t.inbox(&n)), Some(TopicKind::Inbox("pi-1".into())));
        assert_eq!(
            t.parse(&t.status(&n)),
            Some(TopicKind::Status("pi-1".into()))
        );
        assert_eq!(t.parse(&t.log(&n)), Some(TopicKind::Log("pi-1".into())));
        assert_eq!(
            t.parse(&t.events(&n)),
            Some(TopicKind::Events("pi-1".into()))
        );
        assert_eq!(t.parse("plastic/all/in"), Some(TopicKind::AllInbox));
        assert_eq!(
            t.parse(&t.group_inbox("lab").unwrap()),
            Some(TopicKind::GroupInbox("lab".into()))
        );
        assert_eq!(
            t.parse(&t.events_sub(&n, "temp/c").unwrap()),
            Some(TopicKind::EventsSub("pi-1".into(), "temp/c".into()))
        );
        assert_eq!(t.pool_inbox("workers").unwrap(), "plastic/pool/workers/in");
        assert_eq!(
            t.pool_share("workers").unwrap(),
            "$share/plastic/plastic/pool/workers/in"
        );
        assert_eq!(
            t.parse(&t.pool_inbox("workers").unwrap()),
            Some(TopicKind::PoolInbox("workers".into()))
        );
        assert!(t.pool_inbox("a/b").is_err());
        assert_eq!(t.parse("other/pi-1/in"), None);
        assert_eq!(t.parse("plastic/pi-1/bogus"), None);
    }

    #[test]
    fn refuses_bad_prefixes_and_sub_topics() {
        assert!(Topics::new("a/+/b").is_err());
        assert!(Topics::new("").is_err());
        assert!(Topics::new("site/plastic").is_ok());
        let n = NodeName::parse("x").unwrap();
        assert!(Topics::default().events_sub(&n, "a/#").is_err());
        assert!(Topics::default().events_sub(&n, "a//b").is_err());
    }
}
