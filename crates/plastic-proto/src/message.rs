//! Requests: an envelope plus a body, flattened into one JSON object.
//!
//! The seed's dicts are bodies exactly as written (`{"type": "eval", "to_evaluate": "2+3",
//! "need_result": true}`); the envelope fields (`message_id`, `sender`, `receiver`, `reply_to`,
//! `time_stamp`) sit beside them. A bare seed dict with no envelope is still a valid request: it
//! just cannot be answered directly (see [`Envelope::reply_target`]).

use serde_json::{Map, Value};

use crate::command::{Apply, Eval, Exec, Function, Script};
use crate::fields::{get_object, get_str};
use crate::{
    Capability, Command, FileChunk, NodeName, ProtoError, Reply, ReplyError, Taken, MAX_PAYLOAD,
};

/// The routing fields of any message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub receiver: Option<String>,
    pub reply_to: Option<String>,
    pub time_stamp: Option<f64>,
    /// The seed's flag: reply even on success. Errors are always replied to.
    pub need_result: bool,
    /// Seconds after `time_stamp` when the request is stale and must not run.
    pub ttl: Option<f64>,
    /// `type` (or `message_type`) as written, even when the body is refused: a malformed
    /// `result` must not be answered, or two nodes could answer each other forever.
    pub message_type: Option<String>,
}

impl Envelope {
    /// Reads the envelope leniently: a field of the wrong type counts as absent, so that a
    /// request with a broken body can still get its error reply.
    fn from_map(m: &Map<String, Value>) -> Self {
        let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        Envelope {
            message_id: s("message_id"),
            sender: s("sender"),
            receiver: s("receiver"),
            reply_to: s("reply_to"),
            time_stamp: m.get("time_stamp").and_then(Value::as_f64),
            need_result: m
                .get("need_result")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            ttl: m
                .get("ttl")
                .and_then(Value::as_f64)
                .filter(|t| t.is_finite() && *t >= 0.0),
            message_type: s("type").or_else(|| s("message_type")),
        }
    }

    /// Seconds past the request's time to live at `now`, if it has one and it passed.
    ///
    /// A node whose clock is not set (a board without NTP starts in 2000) cannot judge
    /// freshness; it must not call this with such a clock.
    pub fn expired_by(&self, now: f64) -> Option<f64> {
        let late = now - self.deadline()?;
        (late > 0.0).then_some(late)
    }

    /// When the request goes stale, in Unix seconds, if it has a time to live.
    pub fn deadline(&self) -> Option<f64> {
        Some(self.time_stamp? + self.ttl?)
    }

    /// Where a reply goes: `reply_to`, else `sender`, if that is a valid node name.
    pub fn reply_target(&self) -> Option<NodeName> {
        self.reply_to
            .as_deref()
            .or(self.sender.as_deref())
            .and_then(|n| NodeName::parse(n).ok())
    }
}

/// What a message asks for: one variant per message type, each a type of
/// [`crate::command`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Command(Command),
    Eval(Eval),
    Exec(Exec),
    Script(Script),
    File(FileChunk),
    Function(Function),
    Apply(Apply),
    Result(Reply),
    /// A pool member's notice (docs/protocol.md, "Pools"): for the sender, not a request.
    Taken(Taken),
}

impl Body {
    /// The message type as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Command(_) => Command::TYPE,
            Body::Eval(_) => Eval::TYPE,
            Body::Exec(_) => Exec::TYPE,
            Body::Script(_) => Script::TYPE,
            Body::File(_) => FileChunk::TYPE,
            Body::Function(_) => Function::TYPE,
            Body::Apply(_) => Apply::TYPE,
            Body::Result(_) => Reply::TYPE,
            Body::Taken(_) => Taken::TYPE,
        }
    }

    /// What the sender must be allowed to do; `None` for replies.
    pub fn capability(&self) -> Option<Capability> {
        use crate::command::Operation;
        Some(match self {
            Body::Command(c) => c.capability(),
            Body::Eval(e) => e.capability(),
            Body::Exec(e) => e.capability(),
            Body::Script(s) => s.capability(),
            Body::File(f) => f.capability(),
            Body::Function(f) => f.capability(),
            Body::Apply(a) => a.capability(),
            Body::Result(_) | Body::Taken(_) => return None,
        })
    }

    /// Checks a successful reply's `result` against this request's documented reply: every
    /// field there, with its type, and no other. For the conformance suite and the shared
    /// vectors (`tests/vectors/replies.json`); clients decode with [`Reply::decode`].
    pub fn check_result(&self, result: &Value) -> Result<(), ReplyError> {
        use crate::command::{exact_shape, Operation};
        fn output<O: Operation>(_: &O, v: &Value) -> Result<(), ReplyError> {
            exact_shape::<O::Output>(v)
        }
        match self {
            Body::Command(command) => command.check_result(result),
            Body::Eval(op) => output(op, result),
            Body::Function(op) => output(op, result),
            Body::Apply(op) => output(op, result),
            Body::Exec(_) if result.is_null() => Ok(()),
            Body::Exec(_) => Err(ReplyError::Shape(format!("exec gives null, not {result}"))),
            Body::Script(op) => output(op, result),
            Body::File(op) => output(op, result),
            Body::Result(_) => Err(ReplyError::Shape("a reply has no reply".into())),
            Body::Taken(_) => Err(ReplyError::Shape("a notice has no reply".into())),
        }
    }

    fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        // `message_type` is the name the seed's author used in his later versions.
        let ty = match (m.get("type"), m.get("message_type")) {
            (Some(Value::String(t)), _) | (None, Some(Value::String(t))) => t.as_str(),
            (None, None) => return Err(ProtoError::Missing("type")),
            _ => {
                return Err(ProtoError::WrongType {
                    field: "type",
                    expected: "a string",
                })
            }
        };
        Ok(match ty {
            Command::TYPE => {
                let name = get_str(m, "command")?.ok_or(ProtoError::Missing("command"))?;
                let kwargs = get_object(m, "kwargs")?.cloned().unwrap_or_default();
                Body::Command(Command::parse(name, &kwargs)?)
            }
            Eval::TYPE => Body::Eval(Eval::parse(m)?),
            Exec::TYPE => Body::Exec(Exec::parse(m)?),
            Script::TYPE => Body::Script(Script::parse(m)?),
            FileChunk::TYPE => Body::File(FileChunk::parse(m)?),
            Function::TYPE => Body::Function(Function::parse(m)?),
            Apply::TYPE => Body::Apply(Apply::parse(m)?),
            Reply::TYPE => Body::Result(Reply::from_map(m)?),
            Taken::TYPE => Body::Taken(Taken::from_map(m)?),
            other => return Err(ProtoError::UnknownType(other.chars().take(80).collect())),
        })
    }
}

/// A parsed request whose body may still have been refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub envelope: Envelope,
    pub body: Result<Body, ProtoError>,
}

impl Incoming {
    /// Parses a payload from a node's inbox. `Err` means not even the envelope could be read,
    /// so nobody can be answered; the caller logs it.
    ///
    /// A payload over [`MAX_PAYLOAD`] is refused without looking at its body. Up to
    /// `envelope_limit` bytes the envelope is still read so the refusal can be answered: a
    /// Linux node can afford that (the broker caps packets anyway); a small board passes
    /// `MAX_PAYLOAD` and only logs.
    pub fn parse_with_limit(payload: &[u8], envelope_limit: usize) -> Result<Self, ProtoError> {
        let too_large = payload.len() > MAX_PAYLOAD;
        if too_large && payload.len() > envelope_limit {
            return Err(ProtoError::TooLarge {
                size: payload.len(),
                limit: MAX_PAYLOAD,
            });
        }
        // serde_json refuses nesting deeper than 128 levels, so hostile nesting cannot
        // exhaust the stack.
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| ProtoError::Json(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ProtoError::NotAnObject);
        };
        let body = if too_large {
            Err(ProtoError::TooLarge {
                size: payload.len(),
                limit: MAX_PAYLOAD,
            })
        } else {
            Body::parse(&map)
        };
        Ok(Incoming {
            envelope: Envelope::from_map(&map),
            body,
        })
    }

    /// [`Incoming::parse_with_limit`] with no envelope reading past [`MAX_PAYLOAD`].
    pub fn parse(payload: &[u8]) -> Result<Self, ProtoError> {
        Self::parse_with_limit(payload, MAX_PAYLOAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Incoming {
        Incoming::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn the_seed_dicts_parse_as_written() {
        let eval = parse(json!({"type": "eval", "to_evaluate": "2+3", "need_result": true}));
        assert!(eval.envelope.need_result);
        assert_eq!(eval.body.unwrap(), Body::Eval(Eval::new("2+3")));
        let exec = parse(json!({"type": "exec", "to_exec": "print(\"Testing exec !\")"}));
        assert_eq!(exec.body.unwrap().type_name(), "exec");
        let script = parse(json!({"type": "script", "script": "print(1)"}));
        assert_eq!(
            script.body.unwrap(),
            Body::Script(Script {
                script: "print(1)".into(),
                name: "main".into()
            })
        );
        let read = parse(json!({"type": "command", "command": "read GPIOs", "need_result": true}));
        assert_eq!(
            read.body.unwrap(),
            Body::Command(Command::ReadGpios(crate::command::ReadGpios { pins: None }))
        );
    }

    #[test]
    fn message_type_is_an_alias_of_type() {
        let m =
            parse(json!({"message_type": "function", "function": "blink", "kwargs": {"times": 2}}));
        let Body::Function(Function { name, kwargs, .. }) = m.body.unwrap() else {
            panic!()
        };
        assert_eq!(name, "blink");
        assert_eq!(kwargs["times"], 2);
    }

    #[test]
    fn a_bad_body_keeps_its_envelope_so_the_error_can_be_answered() {
        let m = parse(json!({"type": "teleport", "message_id": "m1", "sender": "cli-1"}));
        assert_eq!(m.envelope.message_id.as_deref(), Some("m1"));
        assert_eq!(m.envelope.reply_target().unwrap().as_str(), "cli-1");
        assert_eq!(m.body.unwrap_err().kind(), "UnknownType");
    }

    #[test]
    fn refuses_malformed_huge_and_deep_payloads() {
        assert!(matches!(
            Incoming::parse(b"{not json"),
            Err(ProtoError::Json(_))
        ));
        assert_eq!(Incoming::parse(b"[1,2]"), Err(ProtoError::NotAnObject));
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        assert!(matches!(
            Incoming::parse(&huge),
            Err(ProtoError::TooLarge { .. })
        ));
        let big = format!(
            "{{\"type\":\"exec\",\"sender\":\"c\",\"to_exec\":\"{}\"}}",
            "x".repeat(MAX_PAYLOAD)
        );
        let refused = Incoming::parse_with_limit(big.as_bytes(), 4 * MAX_PAYLOAD).unwrap();
        assert_eq!(refused.envelope.sender.as_deref(), Some("c"));
        assert_eq!(refused.body.unwrap_err().kind(), "PayloadTooLarge");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            Incoming::parse(deep.as_bytes()),
            Err(ProtoError::Json(_))
        ));
    }

    #[test]
    fn ttl_expiry_is_relative_to_the_senders_time_stamp() {
        let m = parse(json!({"type": "eval", "to_evaluate": "1", "time_stamp": 100.0, "ttl": 5}));
        assert_eq!(m.envelope.expired_by(104.0), None);
        assert_eq!(m.envelope.expired_by(107.5), Some(2.5));
        let no_ttl = parse(json!({"type": "eval", "to_evaluate": "1", "time_stamp": 100.0}));
        assert_eq!(no_ttl.envelope.expired_by(1e9), None);
        let bad_ttl =
            parse(json!({"type": "eval", "to_evaluate": "1", "time_stamp": 1.0, "ttl": -3}));
        assert_eq!(bad_ttl.envelope.ttl, None);
    }

    #[test]
    fn function_names_must_be_python_names() {
        let m = parse(json!({"type": "function", "function": "os.system(1)"}));
        assert!(m.body.is_err());
        let m = parse(json!({"type": "function", "function": "functions.add", "args": [1, 2]}));
        assert!(m.body.is_ok());
    }
}
