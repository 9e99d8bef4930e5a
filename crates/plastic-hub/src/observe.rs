//! What the hub watches without deciding anything: every publish and delivery (counted for
//! `/metrics`), every request and reply it routes (handed to the history), connections.
//!
//! Registered whether or not there is a users file. The hook only reads the message's head and
//! hands a record to the history's queue, which never blocks; everything else (matching
//! replies to requests, SQLite) happens on the history's own thread.

use std::borrow::Cow;
use std::sync::Arc;

use plastic_proto::{TopicKind, Topics};
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};

use crate::head::Head;
use crate::history::{unix_now, Record, Recorder};
use crate::metrics::{type_label, HubMetrics};
use crate::users::HUB_USER;

/// Error messages kept in the history are cut to this many characters.
pub const DETAIL_MAX: usize = 500;

/// What the hub and its history see of the world.
#[derive(Clone)]
pub struct Observer {
    pub metrics: Arc<HubMetrics>,
    pub history: Recorder,
}

impl Observer {
    /// Metrics only, no history kept (`plastic demo`, tests).
    pub fn counting_only() -> Self {
        let metrics = Arc::new(HubMetrics::new());
        let history = Recorder::open(None, crate::history::Retention::default(), metrics.clone())
            .expect("without a file there is nothing to fail");
        Observer { metrics, history }
    }

    /// A refused login (MQTT or web), counted and remembered.
    pub fn login_refused(&self, user: &str, reason: &str) {
        self.metrics.logins_refused.inc();
        self.refusal(user, format!("login refused: {reason}"));
    }

    /// A refused request (MQTT or web), counted and remembered.
    pub fn request_refused(&self, user: &str, reason: &str) {
        self.metrics.requests_refused.inc();
        self.refusal(user, reason.to_owned());
    }

    fn refusal(&self, user: &str, reason: String) {
        self.history.record(Record::Refusal {
            at: unix_now(),
            user: user.to_owned(),
            reason: cut(reason),
        });
    }
}

/// What a message published on `topic` by `user` is worth remembering as, if anything. The
/// hub's own requests are not: the web API records them under the user they are sent for.
pub fn record_for(topics: &Topics, user: &str, topic: &str, payload: &[u8]) -> Option<Record> {
    let target = match topics.parse(topic)? {
        TopicKind::Inbox(node) => node,
        TopicKind::AllInbox => "all".to_owned(),
        TopicKind::GroupInbox(g) => format!("group:{g}"),
        TopicKind::PoolInbox(p) => format!("pool:{p}"),
        _ => return None,
    };
    let head: Head = serde_json::from_slice(payload).ok()?;
    let ty = head.kind()?;
    let at = unix_now();
    match ty {
        "result" => Some(Record::Outcome {
            at,
            id: head.correlation_id.as_deref()?.to_owned(),
            node: head.sender.map_or_else(|| user.to_owned(), Cow::into_owned),
            ok: head.ok.unwrap_or(false),
            error: head.error.map(|e| {
                cut(format!(
                    "{}: {}",
                    e.kind.as_deref().unwrap_or("Error"),
                    e.message.as_deref().unwrap_or("")
                ))
            }),
        }),
        "taken" => None,
        // The hub's own client (the web API): it records them itself, under the user they
        // are sent for. Without a users file every connection is anonymous, so the sender
        // field tells.
        _ if user == HUB_USER
            || head
                .sender
                .as_deref()
                .is_some_and(|s| crate::users::owns(HUB_USER, s)) =>
        {
            None
        }
        _ => Some(Record::Request {
            at,
            id: head.message_id.as_deref()?.to_owned(),
            user: user.to_owned(),
            ty: type_label(ty, head.command.as_deref()),
            target,
        }),
    }
}

fn cut(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(DETAIL_MAX) {
        s.truncate(i);
        s.push('…');
    }
    s
}

pub(crate) struct ObserveHandler {
    pub topics: Topics,
    pub observer: Observer,
}

#[async_trait::async_trait]
impl Handler for ObserveHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        let m = &self.observer.metrics;
        match param {
            Parameter::MessagePublish(_, from, publish) => {
                m.messages_in.inc();
                m.bytes_in.inc_by(publish.payload.len() as u64);
                // rmqtt names anonymous connections `undefined`: the client id says more.
                let user = match from.id.username_ref() {
                    "" | "undefined" => from.id.client_id.as_ref(),
                    u => u,
                };
                if let Some(record) =
                    record_for(&self.topics, user, &publish.topic, &publish.payload)
                {
                    self.observer.history.record(record);
                }
            }
            Parameter::MessageDelivered(_, _, publish) => {
                m.messages_out.inc();
                m.bytes_out.inc_by(publish.payload.len() as u64);
            }
            Parameter::ClientConnected(_) => m.connections.inc(),
            Parameter::ClientDisconnected(_, _) => m.connections.dec(),
            _ => {}
        }
        (true, acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_become_records() {
        let t = Topics::default();
        let inbox = t.inbox(&plastic_proto::NodeName::parse("esp-1").unwrap());
        let r = record_for(
            &t,
            "alice",
            &inbox,
            br#"{"type":"eval","to_evaluate":"2+3","message_id":"m1"}"#,
        );
        assert!(
            matches!(r, Some(Record::Request { ref user, ref ty, ref target, .. })
            if user == "alice" && ty == "eval" && target == "esp-1")
        );
        let r = record_for(
            &t,
            "esp-1",
            &inbox,
            br#"{"type":"result","correlation_id":"m1","ok":false,"sender":"esp-1","error":{"kind":"ZeroDivisionError","message":"division by zero"}}"#,
        );
        assert!(
            matches!(r, Some(Record::Outcome { ref node, ok: false, ref error, .. })
            if node == "esp-1" && error.as_deref() == Some("ZeroDivisionError: division by zero"))
        );
        let r = record_for(
            &t,
            "bob",
            &t.all_inbox(),
            br#"{"type":"command","command":"blink led","message_id":"m2"}"#,
        );
        assert!(matches!(r, Some(Record::Request { ref ty, ref target, .. })
            if ty == "command:blink led" && target == "all"));
        // Not requests: presence, garbage, the hub's own, `taken`.
        assert_eq!(record_for(&t, "esp-1", "plastic/esp-1/status", b"{}"), None);
        assert_eq!(record_for(&t, "alice", &inbox, b"not json"), None);
        assert_eq!(
            record_for(&t, HUB_USER, &inbox, br#"{"type":"eval","message_id":"x"}"#),
            None
        );
        assert_eq!(
            record_for(
                &t,
                "hub.1234",
                &inbox,
                br#"{"type":"eval","message_id":"x","sender":"hub.1234"}"#
            ),
            None
        );
        assert_eq!(
            record_for(
                &t,
                "esp-1",
                &inbox,
                br#"{"type":"taken","correlation_id":"x"}"#
            ),
            None
        );
    }

    #[test]
    fn long_details_are_cut() {
        let s = cut("é".repeat(DETAIL_MAX + 10));
        assert_eq!(s.chars().count(), DETAIL_MAX + 1);
    }
}
