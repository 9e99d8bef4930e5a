//! How the embedded broker hands a pool's task to one member (docs/protocol.md, "Pools").
//!
//! rmqtt parses `$share/<group>/<filter>` subscriptions but leaves the choice of subscriber to
//! an extension point whose default refuses shared subscriptions altogether. This is that
//! choice: turn by turn among the members online, and only when none is online, turn by turn
//! among all (the task then waits in that member's persistent session, and the request's
//! `ttl` decides whether it still runs when the member comes back). Mosquitto does the same
//! by default, so a pool behaves alike on both.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
    TopicName,
};

/// Round robin over a shared subscription's subscribers, online ones first.
#[derive(Default)]
pub struct TakeTurns {
    next: AtomicUsize,
}

type Subscriber = (
    NodeId,
    ClientId,
    SubscriptionOptions,
    Option<Vec<SubscriptionIdentifier>>,
    Option<IsOnline>,
);

impl TakeTurns {
    /// The index of the subscriber whose turn it is, and whether it is online.
    fn pick(&self, online: &[bool]) -> Option<(usize, bool)> {
        if online.is_empty() {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let up: Vec<usize> = (0..online.len()).filter(|&i| online[i]).collect();
        Some(if up.is_empty() {
            (turn % online.len(), false)
        } else {
            (up[turn % up.len()], true)
        })
    }
}

#[async_trait]
impl SharedSubscription for TakeTurns {
    fn is_supported(&self) -> bool {
        true
    }

    async fn choice(
        &self,
        _scx: &ServerContext,
        _group: &SharedGroup,
        _publisher: &Id,
        _topic: &TopicName,
        subscribers: &[Subscriber],
    ) -> Option<(usize, IsOnline)> {
        let online: Vec<bool> = subscribers.iter().map(|s| s.4.unwrap_or(false)).collect();
        self.pick(&online)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_go_round_the_online_members_and_to_anyone_when_none_is() {
        let t = TakeTurns::default();
        let picks: Vec<usize> = (0..4)
            .map(|_| t.pick(&[true, false, true]).unwrap().0)
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert_eq!(t.pick(&[false, false]).map(|p| p.1), Some(false));
        assert_eq!(t.pick(&[]), None);
    }
}
