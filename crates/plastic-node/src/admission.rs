//! Admission: what to do with one payload from the node's inbox, before anything runs.
//!
//! [`admit`] is a pure function of the payload, the node's settings, the time and the load
//! (all passed in: no clock reads, no I/O) plus the duplicate memory it consults and updates.
//! It decides one of four things ([`Admission`]): run the request, answer it from memory,
//! refuse it with an error kind, or ignore it (with a line for the log). Sending is the
//! outbox's job; this module knows nothing of it.
//!
//! The order of the checks is the protocol's (docs/protocol.md):
//!
//! 1. the retain flag (a retained request would run again on every reconnect);
//! 2. the envelope must be readable (else nobody can be answered: log only);
//! 3. replies (`type: result`) are never requests: dropped, a malformed one only logged (two
//!    nodes could otherwise answer each other forever), never signed, never remembered;
//! 4. with a key, the signature checks of "Signed requests", in the documented order, before
//!    anything else about the request (an unsigned copy of a signed request's id must not fetch
//!    its cached reply): `Unsigned`, `BadSignature`, the receiver, a `message_id` (`Replayed`),
//!    then a duplicate is recognised *before* freshness (a client resends the very same bytes
//!    after a reconnect), `Stale`, and the replay floor (`Replayed`);
//! 5. duplicates: one still running is ignored (its one reply is coming), one done gets its
//!    first reply again and does not run;
//! 6. `Busy` past [`MAX_IN_FLIGHT`] requests in progress (a copy of a known id never gets here,
//!    so it is never refused `Busy`: that would give its sender a second, wrong reply);
//! 7. `Expired` when the time to live ran out (only with a set clock);
//! 8. a body the protocol refuses gets its `ProtoError` kind.

use plastic_proto::{
    sign, Body, Envelope, ErrorInfo, Incoming, NodeKey, ProtoError, Reply, SignatureError, Taken,
    MAX_PAYLOAD,
};

use crate::recent::{Recent, Seen, SentReply, CAPACITY};

/// Requests handled at once; more are refused with `Busy` (Python work queues behind one
/// interpreter thread anyway, so a deeper queue would only hold memory and stale work).
pub const MAX_IN_FLIGHT: usize = 1024;

/// The broker caps packets (1 MiB on the embedded hub); reading an oversized request's
/// envelope up to this size lets the node answer it instead of leaving the sender to time out.
pub const ENVELOPE_LIMIT: usize = 4 * MAX_PAYLOAD;

/// A clock before 2020 is a clock nobody set; freshness cannot be judged with it.
const CLOCK_SET_AFTER: f64 = 1_577_836_800.0;

/// Everything admission looks at besides the duplicate memory.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionInput<'a> {
    pub payload: &'a [u8],
    /// Delivered with the retain flag: the broker's replay of a retained message.
    pub retained: bool,
    pub own_name: &'a str,
    /// With a key, only requests signed with it run.
    pub key: Option<&'a NodeKey>,
    /// The node's clock, Unix seconds.
    pub now: f64,
    /// When the node started, Unix seconds: signed requests stamped earlier are refused.
    pub started_at: f64,
    /// How far a signed request's time stamp may be from `now`, in seconds.
    pub max_skew: f64,
    /// Requests in progress on this node when this one arrived.
    pub in_flight: usize,
}

/// What to do with one payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Run it; its id (if any) is recorded as running.
    Run(Box<Admitted>),
    /// A duplicate of a finished request: send its first reply again (or nothing, when none
    /// was kept). It does not run again.
    AnswerFromMemory(Option<SentReply>),
    /// Do not run it; answer with an error.
    Refuse(Refusal),
    /// No answer at all.
    Ignore(Ignored),
}

/// A request cleared to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub envelope: Envelope,
    pub body: Body,
    /// When its time to live runs out (Unix seconds), if it has one and the clock is set:
    /// queued Python work checks it again when its turn comes.
    pub deadline: Option<f64>,
}

/// A request answered with an error instead of running.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub envelope: Envelope,
    pub error: ErrorInfo,
    /// The id was recorded: the refusal is this request's one outcome, and a copy resent later
    /// gets it again instead of running. False when the request failed the signature checks
    /// (its id must not be taken for the real one's) or may be a replay.
    pub remembered: bool,
    /// Also noted on the log topic as `refused a request from ...`: security and load
    /// refusals, which someone should see. A request that merely failed (a body the protocol
    /// refuses, a time to live that ran out) is answered as a failed handler is.
    pub noted: bool,
}

/// Why a payload gets no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Ignored {
    /// Nobody can (or may) be answered; the log topic is the only witness. Logged as
    /// `refused a message (<kind>): <reason>`.
    Unanswerable { kind: &'static str, reason: String },
    /// A reply nobody here waits for.
    Reply { correlation_id: String },
    /// A copy of a request still running: its one reply is coming.
    StillRunning { message_id: String },
}

impl Ignored {
    /// The line for the node's log topic, if this deserves one.
    pub fn log_line(&self) -> Option<String> {
        match self {
            Ignored::Unanswerable { kind, reason } => {
                Some(format!("refused a message ({kind}): {reason}"))
            }
            Ignored::Reply { .. } | Ignored::StillRunning { .. } => None,
        }
    }
}

/// Decides what to do with one payload; see the module documentation for the order.
pub fn admit(input: &AdmissionInput<'_>, recent: &mut Recent) -> Admission {
    if input.retained {
        return Admission::Ignore(Ignored::Unanswerable {
            kind: "Retained",
            reason: "requests must not be retained; it was not run".into(),
        });
    }
    let incoming = match Incoming::parse_with_limit(input.payload, ENVELOPE_LIMIT) {
        Ok(incoming) => incoming,
        Err(e) => return Admission::Ignore(unanswerable(&e)),
    };
    let Incoming { envelope, body } = incoming;
    // Replies are not requests: never signed, never remembered (a flood of them must not push
    // requests out of the duplicate memory), and never answered.
    // A pool member's `taken` notice is the same: for a sender, never a request.
    if matches!(envelope.message_type.as_deref(), Some("result" | "taken")) {
        return Admission::Ignore(match body {
            Ok(Body::Result(Reply { correlation_id, .. }))
            | Ok(Body::Taken(Taken { correlation_id, .. })) => Ignored::Reply { correlation_id },
            Ok(_) => unreachable_reply(),
            Err(e) => unanswerable(&e),
        });
    }
    let signed_at = match input.key {
        Some(key) => match check_signature(input, key, &envelope, recent) {
            Ok(ts) => Some(ts),
            Err(e) => return refuse_unauthenticated(envelope, e),
        },
        None => None,
    };
    if let Some(id) = envelope.message_id.clone() {
        match recent.begin(&id, signed_at) {
            Seen::New => {}
            Seen::Running => {
                return Admission::Ignore(Ignored::StillRunning { message_id: id });
            }
            Seen::Done(reply) => return Admission::AnswerFromMemory(reply),
            Seen::Aborted => {
                let message = "aborted before it arrived; it was not run";
                return failed(envelope, ErrorInfo::new("Aborted", message));
            }
            Seen::Replayed => {
                let e = SignatureError::Replayed(format!(
                    "message_id {id} may have run before (stamped before the last {CAPACITY} requests or this node's start); a signed request runs at most once"
                ));
                return refuse_unauthenticated(envelope, e);
            }
        }
    }
    // From here on the id (if any) is recorded as running: every answer below settles it.
    if input.in_flight >= MAX_IN_FLIGHT {
        // Bounded: a flood gets clear refusals, not unbounded memory.
        let busy = ErrorInfo::new(
            "Busy",
            format!(
                "{MAX_IN_FLIGHT} requests are already in progress on this node; try again later"
            ),
        );
        return Admission::Refuse(Refusal {
            envelope,
            error: busy,
            remembered: true,
            noted: true,
        });
    }
    let clock_is_set = input.now > CLOCK_SET_AFTER;
    if let Some(late) = clock_is_set
        .then(|| envelope.expired_by(input.now))
        .flatten()
    {
        let message = format!(
            "the request's time to live ran out {late:.3} s before it arrived; it was not run"
        );
        return failed(envelope, ErrorInfo::new("Expired", message));
    }
    match body {
        Ok(body) => {
            let deadline = clock_is_set.then(|| envelope.deadline()).flatten();
            Admission::Run(Box::new(Admitted {
                envelope,
                body,
                deadline,
            }))
        }
        Err(e) => failed(envelope, ErrorInfo::from(&e)),
    }
}

/// `type: result` always parses as [`Body::Result`] or fails; anything else would be a bug in
/// the protocol crate. Dropping it is the safe answer either way.
fn unreachable_reply() -> Ignored {
    Ignored::Unanswerable {
        kind: "ProtocolError",
        reason: "a result that is not a reply".into(),
    }
}

fn unanswerable(e: &ProtoError) -> Ignored {
    Ignored::Unanswerable {
        kind: e.kind(),
        reason: e.to_string(),
    }
}

/// A refusal of a request whose id cannot be trusted (or may be a replay): not recorded.
fn refuse_unauthenticated(envelope: Envelope, e: SignatureError) -> Admission {
    Admission::Refuse(Refusal {
        envelope,
        error: ErrorInfo::new(e.kind(), e.to_string()),
        remembered: false,
        noted: true,
    })
}

/// A request that fails without running: answered like a failed handler, and remembered.
fn failed(envelope: Envelope, error: ErrorInfo) -> Admission {
    Admission::Refuse(Refusal {
        envelope,
        error,
        remembered: true,
        noted: false,
    })
}

/// The checks of docs/protocol.md, "Signed requests", up to the replay check (which
/// [`Recent::begin`] makes atomically with recording the id). Returns the request's time stamp.
///
/// A copy of a request this node remembers is a duplicate (a client resending after a
/// reconnect sends the very same bytes, time stamp included): it skips the freshness check,
/// which it would fail once `max_skew` has passed, and gets the first reply.
fn check_signature(
    input: &AdmissionInput<'_>,
    key: &NodeKey,
    envelope: &Envelope,
    recent: &Recent,
) -> Result<f64, SignatureError> {
    key.verify(input.payload)?;
    sign::check_receiver(envelope, input.own_name)?;
    let id = envelope.message_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err(SignatureError::Replayed(
            "a signed request needs a message_id".into(),
        ));
    }
    if !recent.knows(id) {
        sign::check_envelope(
            envelope,
            input.own_name,
            input.now,
            input.started_at,
            input.max_skew,
        )?;
    }
    Ok(envelope.time_stamp.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    const NODE: &str = "esp-1";
    /// 2025-11-25: a set clock.
    const NOW: f64 = 1_764_057_600.0;
    const STARTED: f64 = NOW - 60.0;
    const SKEW: f64 = 120.0;

    fn key() -> NodeKey {
        NodeKey::from_hex(&"ab".repeat(32)).unwrap()
    }

    /// What a test expects, in few words.
    #[derive(Debug, PartialEq)]
    enum Want {
        Run,
        Resend(Option<&'static str>),
        /// kind, remembered, noted
        Refuse(&'static str, bool, bool),
        Log(&'static str),
        Quiet,
    }

    fn summary(a: &Admission) -> Want {
        match a {
            Admission::Run(_) => Want::Run,
            Admission::AnswerFromMemory(None) => Want::Resend(None),
            Admission::AnswerFromMemory(Some((topic, payload))) => {
                assert_eq!(
                    (topic.as_str(), payload.as_slice()),
                    ("t/cached", &b"first reply"[..])
                );
                Want::Resend(Some("t/cached"))
            }
            Admission::Refuse(r) => Want::Refuse(
                match r.error.kind.as_str() {
                    "Busy" => "Busy",
                    "Expired" => "Expired",
                    "ProtocolError" => "ProtocolError",
                    "UnknownType" => "UnknownType",
                    "UnknownCommand" => "UnknownCommand",
                    "BadPath" => "BadPath",
                    "PayloadTooLarge" => "PayloadTooLarge",
                    "Unsigned" => "Unsigned",
                    "BadSignature" => "BadSignature",
                    "Stale" => "Stale",
                    "Replayed" => "Replayed",
                    "Aborted" => "Aborted",
                    other => panic!("unexpected kind {other}"),
                },
                r.remembered,
                r.noted,
            ),
            Admission::Ignore(i @ Ignored::Unanswerable { kind, .. }) => {
                assert!(i.log_line().unwrap().starts_with("refused a message ("));
                Want::Log(kind)
            }
            Admission::Ignore(i) => {
                assert_eq!(i.log_line(), None);
                Want::Quiet
            }
        }
    }

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    fn request(id: &str) -> Value {
        json!({"type": "eval", "to_evaluate": "1", "need_result": true,
               "message_id": id, "sender": "cli-1", "receiver": NODE, "time_stamp": NOW})
    }

    fn signed(v: Value) -> Vec<u8> {
        key().sign(&bytes(v))
    }

    /// The memory the table rows run against: `running` is in progress, `done` finished with a
    /// kept reply, and the signed ids likewise.
    fn memory() -> Recent {
        let mut r = Recent::new(STARTED);
        for (id, signed_at) in [("running", None), ("s-running", Some(NOW))] {
            assert_eq!(r.begin(id, signed_at), Seen::New);
        }
        for (id, signed_at) in [("done", None), ("s-done", Some(NOW - 10.0))] {
            assert_eq!(r.begin(id, signed_at), Seen::New);
            r.finish(id, Some(("t/cached".into(), b"first reply".to_vec())));
        }
        r.abort("aborted");
        r.begin("done-quiet", None);
        r.finish("done-quiet", None);
        r
    }

    struct Row {
        name: &'static str,
        payload: Vec<u8>,
        retained: bool,
        keyed: bool,
        now: f64,
        in_flight: usize,
        want: Want,
    }

    fn row(name: &'static str, payload: Vec<u8>, want: Want) -> Row {
        Row {
            name,
            payload,
            retained: false,
            keyed: false,
            now: NOW,
            in_flight: 0,
            want,
        }
    }

    fn keyed(mut r: Row) -> Row {
        r.keyed = true;
        r
    }

    fn busy(mut r: Row) -> Row {
        r.in_flight = MAX_IN_FLIGHT;
        r
    }

    fn table() -> Vec<Row> {
        let with = |id: &str, f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut v = request(id);
            f(v.as_object_mut().unwrap());
            v
        };
        vec![
            // Unreadable envelopes: nobody to answer, logged.
            row(
                "not JSON",
                b"{not json".to_vec(),
                Want::Log("ProtocolError"),
            ),
            row(
                "not an object",
                b"[1, 2]".to_vec(),
                Want::Log("ProtocolError"),
            ),
            row(
                "deeper than 128 levels",
                format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200)).into_bytes(),
                Want::Log("ProtocolError"),
            ),
            row(
                "over the envelope limit",
                vec![b' '; ENVELOPE_LIMIT + 1],
                Want::Log("PayloadTooLarge"),
            ),
            Row {
                retained: true,
                ..row("retained", bytes(request("r-1")), Want::Log("Retained"))
            },
            // Replies: dropped; a malformed one logged, never answered.
            row(
                "a reply",
                bytes(json!({"type": "result", "correlation_id": "c", "ok": true, "result": 1})),
                Want::Quiet,
            ),
            row(
                "a malformed reply",
                bytes(json!({"type": "result", "correlation_id": 5, "sender": "cli-1"})),
                Want::Log("ProtocolError"),
            ),
            keyed(row(
                "a reply to a node with a key needs no signature",
                bytes(json!({"type": "result", "correlation_id": "c", "ok": true})),
                Want::Quiet,
            )),
            busy(row(
                "a reply is not refused Busy",
                bytes(json!({"type": "result", "correlation_id": "c", "ok": true})),
                Want::Quiet,
            )),
            row(
                "a pool member's notice",
                bytes(json!({"type": "taken", "correlation_id": "c", "sender": "w-1"})),
                Want::Quiet,
            ),
            // Plain requests.
            row("new", bytes(request("n-1")), Want::Run),
            row(
                "aborted before it arrived",
                bytes(request("aborted")),
                Want::Refuse("Aborted", true, false),
            ),
            row(
                "no message_id",
                bytes(json!({"type": "eval", "to_evaluate": "1"})),
                Want::Run,
            ),
            row(
                "duplicate of a running request",
                bytes(request("running")),
                Want::Quiet,
            ),
            row(
                "duplicate of a finished request",
                bytes(request("done")),
                Want::Resend(Some("t/cached")),
            ),
            row(
                "duplicate whose reply was not kept",
                bytes(request("done-quiet")),
                Want::Resend(None),
            ),
            busy(row(
                "busy",
                bytes(request("b-1")),
                Want::Refuse("Busy", true, true),
            )),
            busy(row(
                "a copy of a running request is never refused Busy",
                bytes(request("running")),
                Want::Quiet,
            )),
            busy(row(
                "a copy of a finished request is never refused Busy",
                bytes(request("done")),
                Want::Resend(Some("t/cached")),
            )),
            row(
                "one below the limit is not busy",
                bytes(request("b-2")),
                Want::Run,
            )
            .tap(|r| r.in_flight = MAX_IN_FLIGHT - 1),
            row(
                "expired",
                bytes(with("e-1", &|m| {
                    m.insert("time_stamp".into(), json!(NOW - 10.0));
                    m.insert("ttl".into(), json!(5.0));
                })),
                Want::Refuse("Expired", true, false),
            ),
            row(
                "within its time to live",
                bytes(with("e-2", &|m| {
                    m.insert("time_stamp".into(), json!(NOW - 1.0));
                    m.insert("ttl".into(), json!(5.0));
                })),
                Want::Run,
            ),
            Row {
                now: 1000.0,
                ..row(
                    "a clock not set ignores the time to live",
                    bytes(with("e-3", &|m| {
                        m.insert("time_stamp".into(), json!(NOW - 10.0));
                        m.insert("ttl".into(), json!(5.0));
                    })),
                    Want::Run,
                )
            },
            row(
                "a duplicate of a finished request is answered whatever its ttl",
                bytes(with("done", &|m| {
                    m.insert("time_stamp".into(), json!(NOW - 10.0));
                    m.insert("ttl".into(), json!(5.0));
                })),
                Want::Resend(Some("t/cached")),
            ),
            row(
                "unknown type",
                bytes(with("p-1", &|m| {
                    m.insert("type".into(), json!("dance"));
                })),
                Want::Refuse("UnknownType", true, false),
            ),
            row(
                "unknown command",
                bytes(
                    json!({"type": "command", "command": "dance", "message_id": "p-2", "sender": "cli-1"}),
                ),
                Want::Refuse("UnknownCommand", true, false),
            ),
            row(
                "missing field",
                bytes(json!({"type": "eval", "message_id": "p-3", "sender": "cli-1"})),
                Want::Refuse("ProtocolError", true, false),
            ),
            row(
                "bad path",
                bytes(
                    json!({"type": "file", "filename": "../x", "content": "", "message_id": "p-4", "sender": "cli-1"}),
                ),
                Want::Refuse("BadPath", true, false),
            ),
            row(
                "over 256 KiB, envelope readable",
                bytes(with("p-5", &|m| {
                    m.insert("to_evaluate".into(), json!("x".repeat(MAX_PAYLOAD)));
                })),
                Want::Refuse("PayloadTooLarge", true, false),
            ),
            // Signed requests, in the documented order.
            keyed(row("signed", signed(request("s-1")), Want::Run)),
            keyed(row(
                "unsigned",
                bytes(request("s-2")),
                Want::Refuse("Unsigned", false, true),
            )),
            keyed(row(
                "signed with another key",
                NodeKey::from_hex(&"cd".repeat(32))
                    .unwrap()
                    .sign(&bytes(request("s-3"))),
                Want::Refuse("BadSignature", false, true),
            )),
            keyed(row(
                "changed after signing",
                String::from_utf8(signed(request("s-4")))
                    .unwrap()
                    .replace("\"1\"", "\"2\"")
                    .into_bytes(),
                Want::Refuse("BadSignature", false, true),
            )),
            keyed(row(
                "for another node",
                signed(with("s-5", &|m| {
                    m.insert("receiver".into(), json!("esp-2"));
                })),
                Want::Refuse("BadSignature", false, true),
            )),
            keyed(row(
                "broadcast, and without an id: the receiver is checked first",
                signed(
                    json!({"type": "eval", "to_evaluate": "1", "receiver": "all", "time_stamp": NOW}),
                ),
                Want::Refuse("BadSignature", false, true),
            )),
            keyed(row(
                "without a message_id",
                signed(
                    json!({"type": "eval", "to_evaluate": "1", "receiver": NODE, "time_stamp": NOW}),
                ),
                Want::Refuse("Replayed", false, true),
            )),
            keyed(row(
                "an unsigned copy of a finished signed request gets nothing from memory",
                bytes(request("s-done")),
                Want::Refuse("Unsigned", false, true),
            )),
            keyed(row(
                "a signed copy of a finished request, stale by now, gets the first reply",
                signed(with("s-done", &|m| {
                    m.insert("time_stamp".into(), json!(NOW - 1000.0));
                })),
                Want::Resend(Some("t/cached")),
            )),
            keyed(row(
                "a signed copy of a running request is ignored",
                signed(request("s-running")),
                Want::Quiet,
            )),
            keyed(row(
                "a remembered id still needs the right receiver",
                signed(with("s-done", &|m| {
                    m.insert("receiver".into(), json!("esp-2"));
                })),
                Want::Refuse("BadSignature", false, true),
            )),
            keyed(row(
                "stale",
                signed(with("s-6", &|m| {
                    m.insert("time_stamp".into(), json!(NOW - 1000.0));
                })),
                Want::Refuse("Stale", false, true),
            )),
            keyed(row(
                "from the future",
                signed(with("s-7", &|m| {
                    m.insert("time_stamp".into(), json!(NOW + 1000.0));
                })),
                Want::Refuse("Stale", false, true),
            )),
            keyed(row(
                "stamped before the node started",
                signed(with("s-8", &|m| {
                    m.insert("time_stamp".into(), json!(STARTED - 1.0));
                })),
                Want::Refuse("Stale", false, true),
            )),
            keyed(row(
                "without a time stamp",
                signed(
                    json!({"type": "eval", "to_evaluate": "1", "message_id": "s-9", "receiver": NODE}),
                ),
                Want::Refuse("Stale", false, true),
            )),
            keyed(row(
                "at the replay floor",
                signed(with("s-10", &|m| {
                    m.insert("time_stamp".into(), json!(STARTED));
                })),
                Want::Refuse("Replayed", false, true),
            )),
            Row {
                now: 1000.0,
                ..keyed(row(
                    "a node without a set clock refuses signed requests as Stale",
                    signed(request("s-11")),
                    Want::Refuse("Stale", false, true),
                ))
            },
            keyed(busy(row(
                "signed and busy: checked, then refused Busy and remembered",
                signed(request("s-12")),
                Want::Refuse("Busy", true, true),
            ))),
            keyed(busy(row(
                "unsigned and busy: refused Unsigned, not Busy",
                bytes(request("s-13")),
                Want::Refuse("Unsigned", false, true),
            ))),
            keyed(row(
                "signed with a body the protocol refuses",
                signed(with("s-14", &|m| {
                    m.insert("type".into(), json!("dance"));
                })),
                Want::Refuse("UnknownType", true, false),
            )),
        ]
    }

    trait Tap: Sized {
        fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
    }
    impl Tap for Row {
        fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
            f(&mut self);
            self
        }
    }

    fn admit_row(r: &Row, recent: &mut Recent) -> Admission {
        let key = key();
        admit(
            &AdmissionInput {
                payload: &r.payload,
                retained: r.retained,
                own_name: NODE,
                key: r.keyed.then_some(&key),
                now: r.now,
                started_at: STARTED,
                max_skew: SKEW,
                in_flight: r.in_flight,
            },
            recent,
        )
    }

    #[test]
    fn every_row_of_the_admission_table() {
        let mut failures = Vec::new();
        for r in table() {
            let got = summary(&admit_row(&r, &mut memory()));
            if got != r.want {
                failures.push(format!("{}: want {:?}, got {got:?}", r.name, r.want));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn what_admission_records_in_the_memory() {
        for r in table() {
            let mut recent = memory();
            let id = serde_json::from_slice::<Value>(&r.payload)
                .ok()
                .and_then(|v| v.get("message_id")?.as_str().map(str::to_owned));
            let known_before = id.as_deref().is_some_and(|id| recent.knows(id));
            let admission = admit_row(&r, &mut recent);
            let known_after = id.as_deref().is_some_and(|id| recent.knows(id));
            let recorded = match &admission {
                Admission::Run(a) => a.envelope.message_id.is_some(),
                Admission::Refuse(refusal) => known_before || refusal.remembered,
                Admission::AnswerFromMemory(_) | Admission::Ignore(_) => known_before,
            };
            assert_eq!(known_after, recorded, "{}: {admission:?}", r.name);
        }
    }

    #[test]
    fn a_request_admitted_once_is_a_duplicate_after() {
        let mut recent = Recent::new(STARTED);
        let r = keyed(row("signed", signed(request("x-1")), Want::Run));
        assert_eq!(summary(&admit_row(&r, &mut recent)), Want::Run);
        assert_eq!(summary(&admit_row(&r, &mut recent)), Want::Quiet);
        recent.finish("x-1", Some(("t/cached".into(), b"first reply".to_vec())));
        // Resent long after: past max_skew, still the first reply.
        let later = Row {
            now: NOW + 1000.0,
            ..r
        };
        assert_eq!(
            summary(&admit_row(&later, &mut recent)),
            Want::Resend(Some("t/cached"))
        );
    }

    #[test]
    fn run_carries_the_envelope_body_and_deadline() {
        let mut v = request("d-1");
        v["ttl"] = json!(30.0);
        let r = row("ttl", bytes(v), Want::Run);
        let Admission::Run(a) = admit_row(&r, &mut Recent::new(0.0)) else {
            panic!("not run");
        };
        assert_eq!(a.deadline, Some(NOW + 30.0));
        assert_eq!(a.envelope.sender.as_deref(), Some("cli-1"));
        assert_eq!(a.body.type_name(), "eval");
        let unset = Row { now: 1000.0, ..r };
        let Admission::Run(a) = admit_row(&unset, &mut Recent::new(0.0)) else {
            panic!("not run");
        };
        assert_eq!(a.deadline, None, "no deadline without a set clock");
    }

    #[test]
    fn refusals_say_why() {
        let r = busy(row(
            "busy",
            bytes(request("w-1")),
            Want::Refuse("Busy", true, true),
        ));
        let Admission::Refuse(refusal) = admit_row(&r, &mut Recent::new(0.0)) else {
            panic!("not refused");
        };
        assert!(
            refusal.error.message.contains("1024 requests"),
            "{refusal:?}"
        );
        assert_eq!(refusal.envelope.message_id.as_deref(), Some("w-1"));
        let retained = Row {
            retained: true,
            ..row("retained", bytes(request("w-2")), Want::Log("Retained"))
        };
        let Admission::Ignore(ignored) = admit_row(&retained, &mut Recent::new(0.0)) else {
            panic!("not ignored");
        };
        assert_eq!(
            ignored.log_line().unwrap(),
            "refused a message (Retained): requests must not be retained; it was not run"
        );
    }
}
