//! Waiting for replies, as a state machine without I/O (in the style of quinn-proto).
//!
//! A [`Wait`] knows which nodes a request went to, what their presence said when it went out,
//! when the wait ends and whether copies may be sent. It is fed what happens (a reply, a
//! presence change, a reconnection, the time) through `handle_*` methods and says what to do
//! next through [`Wait::poll_timeout`] (when to wake it) and [`Wait::poll_resend`] (whom to
//! send the same bytes again). It never reads a clock: every `Instant` is passed in, so every
//! path (blips, restarts, broker restarts, late joiners) is unit-tested below without sockets
//! or sleeps. `Client::collect` is the thin async loop that drives it.
//!
//! The rules (docs/protocol.md, "Presence"):
//!
//! - A reply settles its node; a second reply for the same node is dropped (at-least-once
//!   delivery and resends make duplicates normal). On a broadcast, replies from nodes nobody
//!   expected (late joiners) are collected too, once each.
//! - `lost`: the node gets [`LOST_GRACE`] to come back `online` (a blip; its persistent session
//!   still holds the request). After that, `NodeLost { state: "lost" }`.
//! - `offline`: a clean shutdown; the node finished what it had and replied before it said so.
//!   But its reply and its presence travel on different topics, which a broker may deliver out
//!   of order (rmqtt does, now and then: a `reset`'s reply came after the `offline`), so the
//!   wait gives it [`OFFLINE_GRACE`] before `NodeLost { state: "offline" }`.
//! - `online` with a different `boot` than when the request went out: the node restarted and
//!   forgot what it ran. `NodeLost { state: "lost (it restarted)" }`: a copy could run twice.
//! - `online` again otherwise, or this client reconnected: a copy is due (a restarted broker
//!   lost its queues). After a reconnection copies follow at 0.5, 1, 2, 4, 4... s until the
//!   reply comes, because nodes may not have re-subscribed to a restarted broker yet.
//! - A copy goes only to a node whose presence *on the current connection* is `online` with
//!   the same `boot` as at send time: its duplicate memory then makes the copy harmless. A
//!   broadcast's copies go to each such node's own inbox, never to the broadcast topic (that
//!   would reach nodes that already answered, and late joiners).
//! - The deadline ends the wait: nodes still waited for get `Timeout`.
//!
//! TTL: the waiter does not end early when a request's `ttl` runs out. The ttl bounds when a
//! node may *start* a request, not how long it runs: a request that arrived in time may still
//! be running, and its reply is the truth. A request that did not arrive in time is refused by
//! the node with an `Expired` error reply, which settles the wait like any reply (also for a
//! node that comes back from `lost` after the ttl: its session delivers the queued request and
//! the node refuses it). Copies after the ttl are still sent: the node checks its duplicate
//! memory before the ttl, so a copy gets the first reply again, or `Expired` if the original
//! never arrived; both are better answers than a timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use plastic_proto::{NodeState, Presence, Reply};

use crate::ClientError;

/// How long a request waits for a `lost` node to come back before ending with `NodeLost`.
pub const LOST_GRACE: Duration = Duration::from_secs(3);
/// How long a request still waits for the reply of a node that said `offline` (see above).
pub const OFFLINE_GRACE: Duration = Duration::from_millis(500);
/// After a reconnection, copies go out at these growing intervals until answered.
pub(crate) const RESEND_FIRST_GAP: Duration = Duration::from_millis(500);
pub(crate) const RESEND_MAX_GAP: Duration = Duration::from_secs(4);

/// What ended a node's wait.
pub(crate) type Outcome = Result<Reply, ClientError>;

/// Where the same bytes go again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resend {
    /// The topic the request was first published to (a request to one node).
    Original,
    /// These nodes' own inboxes (a broadcast's copies).
    Inboxes(Vec<String>),
}

/// How a wait may behave, besides whom it waits for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitConfig {
    /// Sent to a broadcast topic: replies are told apart by `sender`, unexpected senders are
    /// collected, copies go to inboxes.
    pub broadcast: bool,
    /// Copies may be sent (after reconnections and when a node comes back).
    pub resend: bool,
    /// The connection is up when the wait starts.
    pub connected: bool,
    /// Sent to a pool: the one expected name is a placeholder (`pool:<name>`) until a member
    /// says it took the request (`taken`) or replies; from then on that member is the node
    /// waited for (docs/protocol.md, "Pools").
    pub pool: bool,
}

#[derive(Debug)]
struct Expected {
    /// The node's `boot` when the request went out; `None`: it announced none (or no presence
    /// was known), so it never gets copies and is never taken for restarted.
    boot: Option<String>,
    /// When its grace period after going `lost` or `offline` ends.
    lost_until: Option<Instant>,
    /// It said `offline` (not `lost`): what the outcome says when the grace ends.
    offline: bool,
    settled: bool,
}

/// One request's wait for its replies. See the module documentation for the rules.
#[derive(Debug)]
pub(crate) struct Wait {
    expected: BTreeMap<String, Expected>,
    /// Nodes not expected that answered (broadcast late joiners), so each counts once.
    extra: BTreeSet<String>,
    config: WaitConfig,
    timeout: Duration,
    deadline: Instant,
    connected: bool,
    resend_due: bool,
    next_resend: Option<Instant>,
    resend_gap: Duration,
    finished: bool,
    outcomes: Vec<(String, Outcome)>,
}

impl Wait {
    /// Starts waiting at `now` for `expected` nodes (with their `boot` at send time) until
    /// `now + timeout`.
    pub(crate) fn new(
        expected: impl IntoIterator<Item = (String, Option<String>)>,
        config: WaitConfig,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        let expected = expected
            .into_iter()
            .map(|(name, boot)| {
                let e = Expected {
                    boot,
                    lost_until: None,
                    offline: false,
                    settled: false,
                };
                (name, e)
            })
            .collect();
        Wait {
            expected,
            extra: BTreeSet::new(),
            config,
            timeout,
            deadline: now + timeout,
            connected: config.connected,
            resend_due: false,
            next_resend: None,
            resend_gap: RESEND_FIRST_GAP,
            finished: false,
            outcomes: Vec::new(),
        }
    }

    /// Nodes still waited for, in name order.
    pub(crate) fn waiting(&self) -> impl Iterator<Item = &str> {
        self.expected
            .iter()
            .filter(|(_, e)| !e.settled)
            .map(|(n, _)| n.as_str())
    }

    /// True when nothing more can change the outcomes.
    pub(crate) fn is_done(&self) -> bool {
        self.finished || self.waiting().next().is_none()
    }

    /// A pool member took the request: it is now the node waited for, with its `boot` as
    /// known now. Only the first member counts (a broker could deliver a copy to another
    /// member; its duplicate reply is dropped like any other).
    pub(crate) fn handle_taken(&mut self, member: &str, boot: Option<String>) {
        if !self.config.pool || self.finished || member.is_empty() {
            return;
        }
        let placeholder = match self.expected.iter().next() {
            Some((name, e))
                if !e.settled && self.expected.len() == 1 && name.starts_with("pool:") =>
            {
                name.clone()
            }
            _ => return,
        };
        self.expected.remove(&placeholder);
        self.expected.insert(
            member.to_owned(),
            Expected {
                boot,
                lost_until: None,
                offline: false,
                settled: false,
            },
        );
    }

    /// A reply correlated with this request.
    pub(crate) fn handle_reply(&mut self, reply: Reply, _now: Instant) {
        if self.finished {
            return;
        }
        if let Some(sender) = reply.sender.as_deref().filter(|_| self.config.pool) {
            // A reply before any `taken` (a refusal) names the member itself.
            self.handle_taken(sender, None);
        }
        let who = self.attribute(&reply);
        match self.expected.get_mut(&who) {
            Some(e) if e.settled => {
                tracing::debug!(node = %who, "duplicate reply dropped");
            }
            Some(e) => {
                e.settled = true;
                e.lost_until = None;
                self.outcomes.push((who, Ok(reply)));
            }
            None if self.extra.insert(who.clone()) => self.outcomes.push((who, Ok(reply))),
            None => tracing::debug!(node = %who, "duplicate reply dropped"),
        }
    }

    /// Whose reply this is. For a request to one node the correlation id says it, whatever
    /// `sender` says (the protocol does not require `sender` on replies, and the hub answers
    /// refusals as `hub`). A broadcast's replies can only be told apart by `sender`.
    fn attribute(&self, reply: &Reply) -> String {
        let only = (self.expected.len() == 1)
            .then(|| self.expected.keys().next().cloned())
            .flatten();
        match (&reply.sender, only) {
            (_, Some(only)) if !self.config.broadcast => only,
            (Some(sender), _) => sender.clone(),
            (None, Some(only)) => only,
            (None, None) => String::new(),
        }
    }

    /// A presence change seen on the current connection.
    pub(crate) fn handle_presence(&mut self, presence: &Presence, now: Instant) {
        if self.finished {
            return;
        }
        let Some(e) = self.expected.get_mut(&presence.name) else {
            return;
        };
        if e.settled {
            return;
        }
        let node = presence.name.clone();
        match presence.state {
            NodeState::Online => {
                e.lost_until = None;
                e.offline = false;
                let restarted = e.boot.is_some()
                    && presence.boot.is_some()
                    && e.boot.as_deref() != presence.boot.as_deref();
                if restarted {
                    self.settle_lost(node, "lost (it restarted)");
                } else {
                    // Back from a blip (or newly announced): its queue may be gone with a
                    // restarted broker, so a copy is due.
                    self.resend_due = true;
                }
            }
            NodeState::Lost => {
                e.lost_until.get_or_insert(now + LOST_GRACE);
            }
            NodeState::Offline => {
                let until = now + OFFLINE_GRACE;
                e.offline = true;
                e.lost_until = Some(e.lost_until.map_or(until, |t| t.min(until)));
            }
        }
    }

    fn settle_lost(&mut self, node: String, state: &str) {
        if let Some(e) = self.expected.get_mut(&node) {
            e.settled = true;
            e.lost_until = None;
        }
        let error = ClientError::NodeLost {
            node: node.clone(),
            state: state.into(),
        };
        self.outcomes.push((node, Err(error)));
    }

    /// This client's connection is up again (and subscribed): a copy is due now, then more at
    /// growing intervals.
    pub(crate) fn handle_reconnect(&mut self, now: Instant) {
        self.connected = true;
        if self.config.resend {
            self.resend_due = true;
            self.resend_gap = RESEND_FIRST_GAP;
            self.next_resend = Some(now + self.resend_gap);
        }
    }

    /// The connection dropped: nothing can be sent until it is back.
    pub(crate) fn handle_disconnect(&mut self) {
        self.connected = false;
    }

    /// The next instant [`Wait::handle_timeout`] must be called, if the wait is not done.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        let graces = self.expected.values().filter_map(|e| e.lost_until);
        let resend = self.next_resend.filter(|_| self.config.resend);
        graces
            .chain(resend)
            .filter(|t| *t < self.deadline)
            .chain([self.deadline])
            .min()
    }

    /// Does what is due at `now`: grace periods that ran out, a copy on the backoff schedule,
    /// the deadline.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.is_done() {
            return;
        }
        if now >= self.deadline {
            self.finished = true;
            let seconds = self.timeout.as_secs_f64();
            for (node, e) in &mut self.expected {
                if !e.settled {
                    e.settled = true;
                    let error = ClientError::Timeout {
                        node: node.clone(),
                        seconds,
                    };
                    self.outcomes.push((node.clone(), Err(error)));
                }
            }
            return;
        }
        let gone: Vec<(String, bool)> = self
            .expected
            .iter()
            .filter(|(_, e)| !e.settled && e.lost_until.is_some_and(|t| t <= now))
            .map(|(n, e)| (n.clone(), e.offline))
            .collect();
        for (node, offline) in gone {
            self.settle_lost(node, if offline { "offline" } else { "lost" });
        }
        if self.next_resend.is_some_and(|t| t <= now) && self.config.resend {
            self.resend_due = true;
            self.resend_gap = (self.resend_gap * 2).min(RESEND_MAX_GAP);
            self.next_resend = Some(now + self.resend_gap);
        }
    }

    /// The copy to send now, if one is due. `fresh` gives a node's presence as received on the
    /// current connection (`None` if not received since the last reconnection): presence from
    /// before a reconnection cannot prove the node did not restart meanwhile, and an unchanged
    /// presence redelivered after a reconnection produces no change event, so the caller's
    /// table is asked rather than the events.
    pub(crate) fn poll_resend(
        &mut self,
        fresh: impl Fn(&str) -> Option<Presence>,
    ) -> Option<Resend> {
        if !(self.resend_due && self.config.resend && self.connected) || self.is_done() {
            return None;
        }
        self.resend_due = false;
        let same_boot = |node: &str, e: &Expected| {
            e.boot.is_some()
                && fresh(node).is_some_and(|p| p.state == NodeState::Online && p.boot == e.boot)
        };
        let mut waiting = self.expected.iter().filter(|(_, e)| !e.settled).peekable();
        waiting.peek()?;
        if self.config.broadcast {
            let nodes: Vec<String> = waiting
                .filter(|(n, e)| same_boot(n, e))
                .map(|(n, _)| n.clone())
                .collect();
            (!nodes.is_empty()).then_some(Resend::Inboxes(nodes))
        } else {
            waiting
                .all(|(n, e)| same_boot(n, e))
                .then_some(Resend::Original)
        }
    }

    /// Every node's outcome: in the order they were settled, then the unsettled ones (which
    /// only exist when the caller stopped early) as timeouts.
    pub(crate) fn into_outcomes(mut self) -> Vec<(String, Outcome)> {
        let seconds = self.timeout.as_secs_f64();
        for (node, e) in self.expected {
            if !e.settled {
                let error = ClientError::Timeout {
                    node: node.clone(),
                    seconds,
                };
                self.outcomes.push((node, Err(error)));
            }
        }
        self.outcomes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn reply(from: Option<&str>, result: i64) -> Reply {
        let mut r = Reply::ok("id-1", result.into());
        r.sender = from.map(str::to_owned);
        r
    }

    fn presence(name: &str, state: NodeState, boot: Option<&str>) -> Presence {
        Presence {
            name: name.into(),
            state,
            platform: "sim".into(),
            version: "0".into(),
            protocol: 1,
            address: None,
            groups: vec![],
            pools: vec![],
            since: 0.0,
            max_payload: None,
            window: None,
            uptime: None,
            mem_free: None,
            boot: boot.map(str::to_owned),
        }
    }

    fn one(boot: Option<&str>, t0: Instant) -> Wait {
        let config = WaitConfig {
            broadcast: false,
            resend: true,
            connected: true,
            pool: false,
        };
        Wait::new(
            [("pi-1".to_owned(), boot.map(str::to_owned))],
            config,
            t0,
            TIMEOUT,
        )
    }

    fn broadcast(nodes: &[(&str, Option<&str>)], t0: Instant) -> Wait {
        let config = WaitConfig {
            broadcast: true,
            resend: true,
            connected: true,
            pool: false,
        };
        let expected = nodes
            .iter()
            .map(|(n, b)| (n.to_string(), b.map(str::to_owned)));
        Wait::new(expected, config, t0, TIMEOUT)
    }

    /// A fresh presence view in which every listed node is online with its boot.
    fn online(nodes: &[(&str, &str)]) -> impl Fn(&str) -> Option<Presence> {
        let table: BTreeMap<String, Presence> = nodes
            .iter()
            .map(|(n, b)| (n.to_string(), presence(n, NodeState::Online, Some(b))))
            .collect();
        move |node| table.get(node).cloned()
    }

    fn nobody(_: &str) -> Option<Presence> {
        None
    }

    /// The outcome of each node, as a short word, in name order.
    fn summary(wait: Wait) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = wait
            .into_outcomes()
            .into_iter()
            .map(|(n, o)| {
                let word = match o {
                    Ok(r) => format!("reply {}", r.result),
                    Err(ClientError::Timeout { .. }) => "timeout".into(),
                    Err(ClientError::NodeLost { state, .. }) => format!("lost: {state}"),
                    Err(e) => format!("{e}"),
                };
                (n, word)
            })
            .collect();
        out.sort();
        out
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn a_reply_ends_the_wait_whatever_its_sender() {
        let t0 = Instant::now();
        for sender in [Some("pi-1"), Some("hub"), None] {
            let mut w = one(Some("b1"), t0);
            assert!(!w.is_done());
            w.handle_reply(reply(sender, 5), t0);
            assert!(w.is_done(), "{sender:?}");
            assert_eq!(w.poll_timeout(), None);
            assert_eq!(summary(w), pairs(&[("pi-1", "reply 5")]));
        }
    }

    #[test]
    fn duplicate_replies_count_once() {
        let t0 = Instant::now();
        let mut w = broadcast(&[("a", None), ("b", None)], t0);
        w.handle_reply(reply(Some("a"), 1), t0);
        w.handle_reply(reply(Some("a"), 2), t0);
        w.handle_reply(reply(Some("late"), 3), t0);
        w.handle_reply(reply(Some("late"), 4), t0);
        assert!(!w.is_done());
        w.handle_reply(reply(Some("b"), 5), t0);
        assert!(w.is_done());
        let outcomes = w.into_outcomes();
        assert_eq!(outcomes.len(), 3, "{outcomes:?}");
        let words: Vec<(String, String)> = outcomes
            .into_iter()
            .map(|(n, o)| (n, o.unwrap().result.to_string()))
            .collect();
        assert_eq!(words, pairs(&[("a", "1"), ("late", "3"), ("b", "5")]));
    }

    #[test]
    fn timeout_settles_everyone_still_waited_for() {
        let t0 = Instant::now();
        let mut w = broadcast(&[("a", None), ("b", None)], t0);
        w.handle_reply(reply(Some("a"), 1), t0);
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT));
        w.handle_timeout(t0 + Duration::from_secs(9));
        assert!(!w.is_done(), "nothing is due before the deadline");
        w.handle_timeout(t0 + TIMEOUT);
        assert!(w.is_done());
        let outcomes = w.into_outcomes();
        assert!(matches!(
            &outcomes[1],
            (n, Err(ClientError::Timeout { seconds, .. })) if n == "b" && *seconds == 10.0
        ));
    }

    #[test]
    fn a_reply_after_the_deadline_is_ignored() {
        let t0 = Instant::now();
        let mut w = one(None, t0);
        w.handle_timeout(t0 + TIMEOUT);
        w.handle_reply(reply(Some("pi-1"), 5), t0 + TIMEOUT);
        assert_eq!(summary(w), pairs(&[("pi-1", "timeout")]));
    }

    /// Presence paths for a request to one node sent while its boot was `b1`: each row is the
    /// presence states seen (state, boot, seconds after sending), then the time the wait is
    /// driven to, and the outcome.
    #[test]
    fn presence_paths() {
        use NodeState::*;
        type Row = (
            &'static str,
            &'static [(NodeState, Option<&'static str>, u64)],
            u64,
            &'static str,
        );
        let rows: &[Row] = &[
            (
                "offline ends after its short grace",
                &[(Offline, Some("b1"), 1)],
                2,
                "lost: offline",
            ),
            (
                "offline, still in its short grace",
                &[(Offline, Some("b1"), 1)],
                1,
                "waiting",
            ),
            (
                "lost, grace runs out",
                &[(Lost, Some("b1"), 1)],
                4,
                "lost: lost",
            ),
            (
                "lost, still in grace",
                &[(Lost, Some("b1"), 1)],
                3,
                "waiting",
            ),
            (
                "lost, back with the same boot: still waiting",
                &[(Lost, Some("b1"), 1), (Online, Some("b1"), 2)],
                6,
                "waiting",
            ),
            (
                "lost, back with a new boot",
                &[(Lost, Some("b1"), 1), (Online, Some("b2"), 2)],
                2,
                "lost: lost (it restarted)",
            ),
            (
                "online with a new boot without a lost first",
                &[(Online, Some("b2"), 1)],
                1,
                "lost: lost (it restarted)",
            ),
            (
                "back without a boot: not known to have restarted",
                &[(Lost, Some("b1"), 1), (Online, None, 2)],
                6,
                "waiting",
            ),
            (
                "a second lost does not extend the grace",
                &[(Lost, Some("b1"), 1), (Lost, Some("b1"), 3)],
                4,
                "lost: lost",
            ),
            (
                "lost twice with a return between: a new grace",
                &[
                    (Lost, Some("b1"), 1),
                    (Online, Some("b1"), 2),
                    (Lost, Some("b1"), 3),
                ],
                5,
                "waiting",
            ),
            (
                "grace past the deadline: timeout wins",
                &[(Lost, Some("b1"), 8)],
                10,
                "timeout",
            ),
        ];
        for (what, events, until, expected) in rows {
            let t0 = Instant::now();
            let mut w = one(Some("b1"), t0);
            for (state, boot, at) in *events {
                let at = t0 + Duration::from_secs(*at);
                // Time passes up to each event, as the driving loop would make it.
                while let Some(t) = w.poll_timeout().filter(|t| *t <= at) {
                    w.handle_timeout(t);
                }
                w.handle_presence(&presence("pi-1", *state, *boot), at);
            }
            let until = t0 + Duration::from_secs(*until);
            while let Some(t) = w.poll_timeout().filter(|t| *t <= until) {
                w.handle_timeout(t);
            }
            let got = if w.is_done() {
                summary(w).remove(0).1
            } else {
                "waiting".into()
            };
            assert_eq!(got, *expected, "{what}");
        }
    }

    #[test]
    fn a_node_lost_then_back_gets_a_copy_only_with_the_same_boot() {
        let t0 = Instant::now();
        let t = |s: u64| t0 + Duration::from_secs(s);
        let mut w = one(Some("b1"), t0);
        w.handle_presence(&presence("pi-1", NodeState::Lost, Some("b1")), t(1));
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            None,
            "lost: no copy"
        );
        w.handle_presence(&presence("pi-1", NodeState::Online, Some("b1")), t(2));
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            Some(Resend::Original)
        );
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            None,
            "one copy per event"
        );
        // The grace period was cancelled by the return.
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT));
        // A node that announced no boot at send time never gets copies.
        let mut w = one(None, t0);
        w.handle_presence(&presence("pi-1", NodeState::Online, Some("b1")), t(2));
        assert_eq!(w.poll_resend(online(&[("pi-1", "b1")])), None);
        assert!(!w.is_done(), "and is not taken for restarted");
    }

    #[test]
    fn reconnect_resends_with_backoff_while_the_node_is_provably_the_same() {
        let t0 = Instant::now();
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let mut w = one(Some("b1"), t0);
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            None,
            "nothing due yet"
        );
        w.handle_disconnect();
        w.handle_reconnect(ms(1000));
        // Right after the reconnection no fresh presence has arrived yet: no copy, but the
        // schedule keeps trying.
        assert_eq!(w.poll_resend(nobody), None);
        let mut copies = Vec::new();
        let mut now = ms(1000);
        while let Some(t) = w.poll_timeout().filter(|t| *t < ms(9000)) {
            now = t;
            w.handle_timeout(now);
            if w.poll_resend(online(&[("pi-1", "b1")])).is_some() {
                copies.push(now.duration_since(t0).as_millis());
            }
        }
        assert_eq!(copies, vec![1500, 2500, 4500, 8500], "0.5, 1, 2, 4 s gaps");
        assert_eq!(now, ms(8500));
        // The next one would be after the deadline: the deadline is the next wake-up.
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT));
    }

    #[test]
    fn nothing_is_sent_while_disconnected_or_when_resend_is_off() {
        let t0 = Instant::now();
        let mut w = one(Some("b1"), t0);
        w.handle_reconnect(t0);
        w.handle_disconnect();
        assert_eq!(w.poll_resend(online(&[("pi-1", "b1")])), None);
        w.handle_reconnect(t0);
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            Some(Resend::Original)
        );

        let config = WaitConfig {
            broadcast: false,
            resend: false,
            connected: true,
            pool: false,
        };
        let mut w = Wait::new([("pi-1".into(), Some("b1".into()))], config, t0, TIMEOUT);
        w.handle_reconnect(t0);
        w.handle_presence(&presence("pi-1", NodeState::Online, Some("b1")), t0);
        assert_eq!(w.poll_resend(online(&[("pi-1", "b1")])), None);
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT), "no resend timer");
    }

    fn pool(t0: Instant) -> Wait {
        let config = WaitConfig {
            broadcast: false,
            resend: false,
            connected: true,
            pool: true,
        };
        Wait::new([("pool:workers".to_owned(), None)], config, t0, TIMEOUT)
    }

    /// A pool request waits for whoever took it: that member's reply settles it, its loss
    /// ends it as lost, another member's presence does not matter, and without any member
    /// taking it the pool times out.
    #[test]
    fn a_pool_request_follows_the_member_that_took_it() {
        let t0 = Instant::now();
        let mut w = pool(t0);
        w.handle_presence(&presence("w-2", NodeState::Lost, Some("b2")), t0);
        w.handle_taken("w-1", Some("b1".into()));
        w.handle_taken("w-2", Some("b2".into()));
        w.handle_presence(&presence("w-2", NodeState::Lost, Some("b2")), t0);
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT));
        w.handle_reply(reply(Some("w-1"), 1), t0);
        assert_eq!(summary(w), [("w-1".into(), "reply 1".into())]);

        let mut w = pool(t0);
        w.handle_taken("w-1", Some("b1".into()));
        w.handle_presence(&presence("w-1", NodeState::Lost, Some("b1")), t0);
        w.handle_timeout(t0 + LOST_GRACE);
        assert_eq!(summary(w), [("w-1".into(), "lost: lost".into())]);

        // Lost before its notice came: the client applies the presence it has then.
        let mut w = pool(t0);
        w.handle_taken("w-1", Some("b1".into()));
        w.handle_presence(&presence("w-1", NodeState::Lost, Some("b1")), t0);
        assert_eq!(w.poll_timeout(), Some(t0 + LOST_GRACE));

        let mut w = pool(t0);
        w.handle_taken("w-1", Some("b1".into()));
        w.handle_presence(&presence("w-1", NodeState::Online, Some("b9")), t0);
        assert_eq!(
            summary(w),
            [("w-1".into(), "lost: lost (it restarted)".into())]
        );

        // A reply with no notice before it (a refusal) names its member.
        let mut w = pool(t0);
        w.handle_reply(reply(Some("w-3"), 1), t0);
        assert_eq!(summary(w), [("w-3".into(), "reply 1".into())]);

        let mut w = pool(t0);
        w.handle_timeout(t0 + TIMEOUT);
        assert_eq!(summary(w), [("pool:workers".into(), "timeout".into())]);
        let mut w = pool(t0);
        assert_eq!(
            w.poll_resend(online(&[])),
            None,
            "a pool request is never sent again"
        );
    }

    #[test]
    fn broadcast_copies_go_to_each_same_boot_node_still_waited_for() {
        let t0 = Instant::now();
        let mut w = broadcast(
            &[
                ("a", Some("a1")),
                ("b", Some("b1")),
                ("c", Some("c1")),
                ("d", None),
            ],
            t0,
        );
        w.handle_reply(reply(Some("a"), 1), t0);
        w.handle_reconnect(t0);
        // a answered; b is the same; c restarted (no copy: it could run twice); d never says.
        let view = online(&[("a", "a1"), ("b", "b1"), ("c", "c2"), ("d", "d1")]);
        assert_eq!(
            w.poll_resend(&view),
            Some(Resend::Inboxes(vec!["b".into()]))
        );
        // A late joiner's reply is collected but it is never waited for nor sent copies.
        w.handle_reply(reply(Some("e"), 9), t0);
        w.handle_presence(&presence("e", NodeState::Lost, Some("e1")), t0);
        w.handle_reply(reply(Some("b"), 2), t0);
        w.handle_presence(&presence("c", NodeState::Online, Some("c2")), t0);
        w.handle_presence(&presence("d", NodeState::Offline, None), t0);
        assert!(
            !w.is_done(),
            "offline gets a short grace for a reply delivered late"
        );
        w.handle_timeout(t0 + OFFLINE_GRACE);
        assert!(w.is_done());
        assert_eq!(
            summary(w),
            pairs(&[
                ("a", "reply 1"),
                ("b", "reply 2"),
                ("c", "lost: lost (it restarted)"),
                ("d", "lost: offline"),
                ("e", "reply 9"),
            ])
        );
    }

    #[test]
    fn a_request_to_one_node_is_resent_to_its_topic_only_if_the_node_is_the_same() {
        let t0 = Instant::now();
        for (view, expected) in [
            (online(&[("pi-1", "b1")]), Some(Resend::Original)),
            (online(&[("pi-1", "b2")]), None),
            (online(&[("other", "b1")]), None),
        ] {
            let mut w = one(Some("b1"), t0);
            w.handle_reconnect(t0);
            assert_eq!(w.poll_resend(view), expected);
        }
        let lost_view = |node: &str| Some(presence(node, NodeState::Lost, Some("b1")));
        let mut w = one(Some("b1"), t0);
        w.handle_reconnect(t0);
        assert_eq!(w.poll_resend(lost_view), None, "only to an online node");
    }

    #[test]
    fn a_broadcast_reply_without_sender_is_the_only_nodes_or_nobodys() {
        let t0 = Instant::now();
        let mut w = broadcast(&[("a", None)], t0);
        w.handle_reply(reply(None, 1), t0);
        assert_eq!(summary(w), pairs(&[("a", "reply 1")]));
        // With one node expected, a late joiner's reply on a broadcast is still its own.
        let mut w = broadcast(&[("a", None)], t0);
        w.handle_reply(reply(Some("late"), 2), t0);
        assert!(!w.is_done());
    }

    /// TTL: the wait keeps its timeout (see the module documentation). A node that comes back
    /// from `lost` after the ttl refuses the request its session delivers as `Expired`; that
    /// error reply is the outcome, not a `NodeLost` or a `Timeout`.
    #[test]
    fn ttl_an_expired_refusal_settles_the_wait_like_any_reply() {
        let t0 = Instant::now();
        let t = |s: u64| t0 + Duration::from_secs(s);
        let mut w = one(Some("b1"), t0);
        w.handle_presence(&presence("pi-1", NodeState::Lost, Some("b1")), t(1));
        w.handle_timeout(t(2));
        w.handle_presence(&presence("pi-1", NodeState::Online, Some("b1")), t(3));
        assert_eq!(
            w.poll_resend(online(&[("pi-1", "b1")])),
            Some(Resend::Original)
        );
        let expired = Reply::err("id-1", plastic_proto::ErrorInfo::new("Expired", "too late"));
        w.handle_reply(expired, t(3));
        let (node, outcome) = w.into_outcomes().remove(0);
        assert_eq!(node, "pi-1");
        assert_eq!(outcome.unwrap().error.unwrap().kind, "Expired");
    }

    #[test]
    fn a_reply_delivered_after_the_nodes_offline_still_counts() {
        let t0 = Instant::now();
        let mut w = one(Some("b1"), t0);
        w.handle_presence(&presence("pi-1", NodeState::Offline, Some("b1")), t0);
        assert_eq!(w.poll_timeout(), Some(t0 + OFFLINE_GRACE));
        w.handle_reply(reply(Some("pi-1"), 7), t0 + OFFLINE_GRACE / 2);
        assert_eq!(summary(w), pairs(&[("pi-1", "reply 7")]));
    }

    #[test]
    fn presence_of_nodes_not_waited_for_changes_nothing() {
        let t0 = Instant::now();
        let mut w = one(Some("b1"), t0);
        w.handle_presence(&presence("other", NodeState::Offline, None), t0);
        w.handle_presence(&presence("other", NodeState::Lost, None), t0);
        assert!(!w.is_done());
        assert_eq!(w.poll_timeout(), Some(t0 + TIMEOUT));
        w.handle_reply(reply(Some("pi-1"), 1), t0);
        // Settled nodes ignore later presence.
        w.handle_presence(&presence("pi-1", NodeState::Offline, None), t0);
        assert_eq!(summary(w), pairs(&[("pi-1", "reply 1")]));
    }
}
