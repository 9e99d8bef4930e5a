//! Every reply the node makes goes out here, refusals included.
//!
//! The rule: a reply goes out when `need_result` is set, and always when the request failed,
//! so nothing fails silently; a success nobody asked about is quiet (its printed output goes
//! to the log topic). A reply is stamped (`sender`, `message_id`, `time_stamp`), addressed to
//! `reply_to` (else `sender`) or, when neither is a usable name, written to the log topic;
//! one over the protocol's size limit is replaced by a `PayloadTooLarge` error; and what was
//! sent is recorded in the duplicate memory, so a copy of the request gets the very same bytes.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use plastic_client::Client;
use plastic_proto::{
    unix_seconds, Envelope, ErrorInfo, NodeName, Reply, Taken, Topics, MAX_PAYLOAD,
};
use rumqttc::QoS;

use crate::admission::Refusal;
use crate::log_topic::LogTopic;
use crate::python::Outcome;
use crate::recent::{Recent, SentReply};

/// Largest reply kept for answering duplicates. Big replies are not kept: 4,096 of them could
/// take a gigabyte. A duplicate of such a request gets no second reply (its first is on its way).
const MAX_CACHED_REPLY: usize = 16 * 1024;

/// Addresses, sends and remembers replies.
pub struct Outbox {
    name: NodeName,
    topics: Topics,
    client: Client,
    log: LogTopic,
    recent: Arc<Mutex<Recent>>,
}

/// Where a reply goes.
#[derive(Debug, PartialEq)]
enum Destination {
    Inbox(String),
    /// Nobody to address: the log topic, as a JSON line.
    Log,
}

impl Outbox {
    pub fn new(
        name: NodeName,
        topics: Topics,
        client: Client,
        log: LogTopic,
        recent: Arc<Mutex<Recent>>,
    ) -> Self {
        Outbox {
            name,
            topics,
            client,
            log,
            recent,
        }
    }

    /// Answers a request with its outcome. With `remember`, the request's id (recorded as
    /// running at admission) is settled with what was sent.
    pub async fn answer(&self, envelope: &Envelope, outcome: Outcome, remember: bool) {
        let failed = outcome.result.is_err();
        let sent = match reply_for(envelope, outcome) {
            Answer::Reply(reply) => self.send(envelope, *reply, failed).await,
            Answer::Quiet { stdout } => {
                if !stdout.is_empty() {
                    // Nobody asked for the result, but printed output should not vanish.
                    self.log.line("node", "info", stdout.trim_end());
                }
                None
            }
        };
        if let (true, Some(id)) = (remember, &envelope.message_id) {
            let kept = sent.filter(|(_, payload)| payload.len() <= MAX_CACHED_REPLY);
            self.recent.lock().unwrap().finish(id, kept);
        }
    }

    /// Answers a request that was not run with its error; a security or load refusal is also
    /// noted on the log topic (and in the node's own log).
    pub async fn refuse(&self, refusal: Refusal) {
        let Refusal {
            envelope,
            error,
            remembered,
            noted,
        } = refusal;
        if noted {
            tracing::warn!(kind = %error.kind, sender = ?envelope.sender, "refused a request: {}", error.message);
            self.log.line(
                "node",
                "error",
                &format!(
                    "refused a request from {} ({}): {}",
                    envelope.sender.as_deref().unwrap_or("?"),
                    error.kind,
                    error.message
                ),
            );
        }
        self.answer(&envelope, Outcome::error(error), remembered)
            .await;
    }

    /// Tells the sender of a pool request that this node took it (docs/protocol.md, "Pools"),
    /// so the sender knows whose fate decides the request's. Nothing for a request without an
    /// id or an address: there is nobody waiting to tell.
    pub async fn taken(&self, envelope: &Envelope) {
        let (Some(id), Some(to)) = (&envelope.message_id, envelope.reply_target()) else {
            return;
        };
        let notice = Taken::new(id, self.name.as_str());
        self.publish(&self.topics.inbox(&to), notice.to_bytes())
            .await;
    }

    /// Sends a reply again, byte for byte (a duplicate of a finished request).
    pub async fn resend(&self, (topic, payload): SentReply) {
        self.publish(&topic, payload).await;
    }

    /// Stamps, addresses and sends `reply`; returns it as sent, for the duplicate memory.
    async fn send(&self, envelope: &Envelope, mut reply: Reply, failed: bool) -> Option<SentReply> {
        let now = unix_seconds(SystemTime::now());
        let id = plastic_proto::new_message_id();
        match address(&mut reply, &self.name, &self.topics, envelope, now, id) {
            Destination::Inbox(topic) => {
                let payload = encode_within_limit(&reply);
                self.publish(&topic, payload.clone()).await;
                Some((topic, payload))
            }
            Destination::Log => {
                let text = String::from_utf8_lossy(&reply.to_bytes()).into_owned();
                self.log
                    .line("reply", if failed { "error" } else { "info" }, &text);
                None
            }
        }
    }

    async fn publish(&self, topic: &str, payload: Vec<u8>) {
        if let Err(e) = self
            .client
            .publish(topic, payload, QoS::AtLeastOnce, false)
            .await
        {
            tracing::warn!(error = %e, "could not send a reply");
        }
    }
}

/// What an outcome calls for.
#[derive(Debug, PartialEq)]
enum Answer {
    /// This reply, not yet stamped.
    Reply(Box<Reply>),
    /// Nothing: a success nobody asked about, with what it printed.
    Quiet { stdout: String },
}

fn reply_for(envelope: &Envelope, outcome: Outcome) -> Answer {
    let Outcome { result, stdout } = outcome;
    let correlation_id = envelope.message_id.as_deref().unwrap_or_default();
    if !envelope.need_result && result.is_ok() {
        return Answer::Quiet { stdout };
    }
    Answer::Reply(Box::new(
        match result {
            Ok((value, repr)) => Reply {
                repr,
                ..Reply::ok(correlation_id, value)
            },
            Err(error) => Reply::err(correlation_id, error),
        }
        .with_stdout(stdout),
    ))
}

/// Stamps `reply` as this node's and says where it goes.
fn address(
    reply: &mut Reply,
    own_name: &NodeName,
    topics: &Topics,
    envelope: &Envelope,
    now: f64,
    message_id: String,
) -> Destination {
    reply.sender = Some(own_name.to_string());
    reply.message_id = Some(message_id);
    reply.time_stamp = Some(now);
    match envelope.reply_target() {
        Some(target) => {
            reply.receiver = Some(target.to_string());
            Destination::Inbox(topics.inbox(&target))
        }
        None => Destination::Log,
    }
}

/// The reply's bytes; over the protocol's size limit, a `PayloadTooLarge` error in its place:
/// sent as it is, it would break the connection (rumqttc and brokers drop oversized packets).
fn encode_within_limit(reply: &Reply) -> Vec<u8> {
    let payload = reply.to_bytes();
    if payload.len() <= MAX_PAYLOAD {
        return payload;
    }
    let message = format!(
        "the reply is {} bytes; the limit is {MAX_PAYLOAD} (return less, or write a file)",
        payload.len()
    );
    let mut refused = Reply::err(
        &reply.correlation_id,
        ErrorInfo::new("PayloadTooLarge", message),
    );
    refused.sender = reply.sender.clone();
    refused.receiver = reply.receiver.clone();
    refused.message_id = reply.message_id.clone();
    refused.time_stamp = reply.time_stamp;
    refused.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn envelope(need_result: bool) -> Envelope {
        Envelope {
            message_id: Some("m-1".into()),
            sender: Some("cli-1".into()),
            need_result,
            ..Envelope::default()
        }
    }

    fn ok(value: Value, stdout: &str) -> Outcome {
        Outcome {
            result: Ok((value, false)),
            stdout: stdout.into(),
        }
    }

    fn unwrap(answer: Answer) -> Reply {
        match answer {
            Answer::Reply(reply) => *reply,
            Answer::Quiet { .. } => panic!("no reply"),
        }
    }

    #[test]
    fn a_reply_when_asked_for_and_whenever_it_failed() {
        assert_eq!(
            reply_for(&envelope(false), ok(json!(5), "printed")),
            Answer::Quiet {
                stdout: "printed".into()
            }
        );
        let reply = unwrap(reply_for(&envelope(true), ok(json!(0), "printed")));
        assert_eq!(
            (
                reply.correlation_id.as_str(),
                reply.ok,
                &reply.result,
                reply.stdout.as_str()
            ),
            ("m-1", true, &json!(0), "printed")
        );
        let failed = Outcome::error(ErrorInfo::new("ValueError", "no"));
        let reply = unwrap(reply_for(&envelope(false), failed));
        assert_eq!(reply.error.unwrap().kind, "ValueError");
        let repr = Outcome {
            result: Ok((json!("<function f>"), true)),
            stdout: String::new(),
        };
        assert!(unwrap(reply_for(&envelope(true), repr)).repr);
    }

    #[test]
    fn replies_go_to_reply_to_else_sender_else_the_log() {
        let topics = Topics::default();
        let me = NodeName::parse("pi-1").unwrap();
        let mut env = envelope(true);
        let mut reply = Reply::ok("m-1", json!(1));
        let dest = address(&mut reply, &me, &topics, &env, 7.0, "r-1".into());
        assert_eq!(dest, Destination::Inbox("plastic/cli-1/in".into()));
        assert_eq!(
            (
                reply.sender.as_deref(),
                reply.receiver.as_deref(),
                reply.message_id.as_deref(),
                reply.time_stamp
            ),
            (Some("pi-1"), Some("cli-1"), Some("r-1"), Some(7.0))
        );
        env.reply_to = Some("watcher".into());
        let dest = address(&mut reply, &me, &topics, &env, 7.0, "r-2".into());
        assert_eq!(dest, Destination::Inbox("plastic/watcher/in".into()));
        for unusable in [None, Some("not/a name".to_owned())] {
            let env = Envelope {
                sender: unusable,
                ..Envelope::default()
            };
            let mut reply = Reply::ok("", json!(1));
            assert_eq!(
                address(&mut reply, &me, &topics, &env, 7.0, "r-3".into()),
                Destination::Log
            );
        }
    }

    #[test]
    fn an_oversized_reply_becomes_payload_too_large_with_the_same_envelope() {
        let mut reply = Reply::ok("m-1", json!("x".repeat(MAX_PAYLOAD)));
        reply.sender = Some("pi-1".into());
        reply.receiver = Some("cli-1".into());
        reply.message_id = Some("r-1".into());
        reply.time_stamp = Some(7.0);
        let sent: Reply = serde_json::from_slice(&encode_within_limit(&reply)).unwrap();
        assert_eq!(sent.error.as_ref().unwrap().kind, "PayloadTooLarge");
        assert_eq!(
            (
                sent.correlation_id.as_str(),
                sent.receiver,
                sent.message_id,
                sent.time_stamp
            ),
            ("m-1", Some("cli-1".into()), Some("r-1".into()), Some(7.0))
        );
        let small = Reply::ok("m-2", json!(1));
        assert_eq!(encode_within_limit(&small), small.to_bytes());
    }
}
