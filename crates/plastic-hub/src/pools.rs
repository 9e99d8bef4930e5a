//! How the embedded broker hands a pool's task to one member (docs/protocol.md, "Pools").
//!
//! rmqtt parses `$share/<group>/<filter>` subscriptions but leaves the choice of subscriber to
//! an extension point whose default refuses shared subscriptions altogether. This is that
//! choice: turn by turn among the members online, and only when none is online, turn by turn
//! among all (the task then waits in that member's persistent session, and the request's
//! `ttl` decides whether it still runs when the member comes back). Mosquitto does the same
//! by default, so a pool behaves alike on both.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use rmqtt::context::ServerContext;
use rmqtt::subscribe::SharedSubscription;
use rmqtt::types::{
    ClientId, Id, IsOnline, NodeId, SharedGroup, SubscriptionIdentifier, SubscriptionOptions,
    TopicName,
};

/// Round robin over a shared subscription's subscribers, online ones first, one turn counter
/// per pool topic (one for all would hand alternating pools' tasks to the same members).
#[derive(Default)]
pub struct TakeTurns {
    next: Mutex<HashMap<String, usize>>,
}

type Subscriber = (
    NodeId,
    ClientId,
    SubscriptionOptions,
    Option<Vec<SubscriptionIdentifier>>,
    Option<IsOnline>,
);

impl TakeTurns {
    /// The index of the subscriber of `topic` whose turn it is, and whether it is online.
    /// Called for every message to a pool: no allocation but a pool's first counter.
    fn pick(
        &self,
        topic: &str,
        online: impl Iterator<Item = bool> + Clone,
    ) -> Option<(usize, bool)> {
        let all = online.clone().count();
        if all == 0 {
            return None;
        }
        let turn = {
            let mut next = self.next.lock().unwrap();
            // Bounded: the hub admits a limited number of subscriptions, hence of pools.
            let counter = match next.get_mut(topic) {
                Some(counter) => counter,
                None => next.entry(topic.to_owned()).or_default(),
            };
            *counter = counter.wrapping_add(1);
            *counter
        };
        let up = online.clone().filter(|o| *o).count();
        Some(if up == 0 {
            (turn % all, false)
        } else {
            let nth = turn % up;
            let index = online
                .enumerate()
                .filter(|(_, o)| *o)
                .nth(nth)
                .map(|(i, _)| i)?;
            (index, true)
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
        topic: &TopicName,
        subscribers: &[Subscriber],
    ) -> Option<(usize, IsOnline)> {
        self.pick(topic, subscribers.iter().map(|s| s.4.unwrap_or(false)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_go_round_the_online_members_and_to_anyone_when_none_is() {
        let t = TakeTurns::default();
        let picks: Vec<usize> = (0..4)
            .map(|_| t.pick("a", [true, false, true].into_iter()).unwrap().0)
            .collect();
        assert_eq!(picks, [2, 0, 2, 0]);
        // Each pool takes its own turns: alternating tasks do not pin a member.
        let (a, b) = (
            t.pick("a", [true, true].into_iter()).unwrap().0,
            t.pick("b", [true, true].into_iter()).unwrap().0,
        );
        let (a2, b2) = (
            t.pick("a", [true, true].into_iter()).unwrap().0,
            t.pick("b", [true, true].into_iter()).unwrap().0,
        );
        assert!(a != a2 && b != b2, "{a} {a2} {b} {b2}");
        assert_eq!(
            t.pick("a", [false, false].into_iter()).map(|p| p.1),
            Some(false)
        );
        assert_eq!(t.pick("a", std::iter::empty()), None);
    }
}
