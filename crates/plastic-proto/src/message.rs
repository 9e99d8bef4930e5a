//! Requests: an envelope plus a body, flattened into one JSON object.
//!
//! The seed's dicts are bodies exactly as written (`{"type": "eval", "to_evaluate": "2+3",
//! "need_result": true}`); the envelope fields (`message_id`, `sender`, `receiver`, `reply_to`,
//! `time_stamp`) sit beside them. A bare seed dict with no envelope is still a valid request: it
//! just cannot be answered directly (see [`Envelope::reply_target`]).

use serde_json::{Map, Value};

use crate::file::FileChunk;
use crate::{Command, NodeName, ProtoError, Reply, MAX_PAYLOAD};

/// Default name of a deployed script when the message gives none.
pub const DEFAULT_SCRIPT_NAME: &str = "main";

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

/// What a message asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Command(Command),
    Eval {
        to_evaluate: String,
    },
    Exec {
        to_exec: String,
    },
    /// Deploys and starts a script, replacing a running script of the same name.
    Script {
        script: String,
        name: String,
    },
    File(FileChunk),
    /// Calls a callable in the node's namespace; a dotted name reaches into modules.
    Function {
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    },
    Result(Reply),
}

impl Body {
    /// The message type as written on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::Command(_) => "command",
            Body::Eval { .. } => "eval",
            Body::Exec { .. } => "exec",
            Body::Script { .. } => "script",
            Body::File(_) => "file",
            Body::Function { .. } => "function",
            Body::Result(_) => "result",
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
            "command" => {
                let name = get_str(m, "command")?.ok_or(ProtoError::Missing("command"))?;
                let kwargs = get_object(m, "kwargs")?.cloned().unwrap_or_default();
                Body::Command(Command::parse(name, &kwargs)?)
            }
            "eval" => Body::Eval {
                to_evaluate: get_str(m, "to_evaluate")?
                    .ok_or(ProtoError::Missing("to_evaluate"))?
                    .to_owned(),
            },
            "exec" => Body::Exec {
                to_exec: get_str(m, "to_exec")?
                    .ok_or(ProtoError::Missing("to_exec"))?
                    .to_owned(),
            },
            "script" => {
                let name = get_str(m, "name")?.unwrap_or(DEFAULT_SCRIPT_NAME);
                crate::name::validate_name(name)?;
                Body::Script {
                    script: get_str(m, "script")?
                        .ok_or(ProtoError::Missing("script"))?
                        .to_owned(),
                    name: name.to_owned(),
                }
            }
            "file" => Body::File(FileChunk::parse(m)?),
            "function" => {
                let name = get_str(m, "function")?
                    .or(get_str(m, "name")?)
                    .ok_or(ProtoError::Missing("function"))?;
                if name.is_empty() || !name.split('.').all(is_identifier) {
                    return Err(ProtoError::Invalid {
                        field: "function",
                        reason: format!("`{name}` is not a (dotted) Python name"),
                    });
                }
                let args = match m.get("args") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(a)) => a.clone(),
                    Some(_) => {
                        return Err(ProtoError::WrongType {
                            field: "args",
                            expected: "a list",
                        })
                    }
                };
                Body::Function {
                    name: name.to_owned(),
                    args,
                    kwargs: get_object(m, "kwargs")?.cloned().unwrap_or_default(),
                }
            }
            "result" => Body::Result(Reply::from_map(m)?),
            other => return Err(ProtoError::UnknownType(other.chars().take(80).collect())),
        })
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
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

/// A request as a client builds it: a body (any JSON object, seed dicts included) that
/// [`Request::stamp`] completes with the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub fields: Map<String, Value>,
}

impl Request {
    pub fn new(fields: Map<String, Value>) -> Self {
        Request { fields }
    }

    pub fn eval(code: &str) -> Self {
        Self::typed("eval", [("to_evaluate", code.into())])
    }
    pub fn exec(code: &str) -> Self {
        Self::typed("exec", [("to_exec", code.into())])
    }
    pub fn script(source: &str, name: &str) -> Self {
        Self::typed("script", [("script", source.into()), ("name", name.into())])
    }
    pub fn command(name: &str, kwargs: Map<String, Value>) -> Self {
        Self::typed(
            "command",
            [("command", name.into()), ("kwargs", Value::Object(kwargs))],
        )
    }
    pub fn function(name: &str, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Self::typed(
            "function",
            [
                ("function", name.into()),
                ("args", args.into()),
                ("kwargs", kwargs.into()),
            ],
        )
    }

    fn typed<const N: usize>(ty: &str, fields: [(&str, Value); N]) -> Self {
        let mut m = Map::new();
        m.insert("type".into(), ty.into());
        for (k, v) in fields {
            m.insert(k.into(), v);
        }
        Request { fields: m }
    }

    /// Fills in the envelope fields the body does not set already and returns the message id.
    pub fn stamp(&mut self, sender: &NodeName, receiver: &str, time_stamp: f64) -> String {
        let id = match self.fields.get("message_id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => {
                let id = crate::new_message_id();
                self.fields.insert("message_id".into(), id.clone().into());
                id
            }
        };
        self.fields
            .entry("sender")
            .or_insert_with(|| sender.as_str().into());
        self.fields
            .entry("receiver")
            .or_insert_with(|| receiver.into());
        self.fields
            .entry("reply_to")
            .or_insert_with(|| sender.as_str().into());
        self.fields
            .entry("time_stamp")
            .or_insert_with(|| time_stamp.into());
        id
    }

    pub fn set_need_result(&mut self, need: bool) {
        self.fields.insert("need_result".into(), need.into());
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.fields).unwrap_or_default()
    }
}

pub(crate) fn get_str<'a>(
    m: &'a Map<String, Value>,
    k: &'static str,
) -> Result<Option<&'a str>, ProtoError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ProtoError::WrongType {
            field: k,
            expected: "a string",
        }),
    }
}

pub(crate) fn get_object<'a>(
    m: &'a Map<String, Value>,
    k: &'static str,
) -> Result<Option<&'a Map<String, Value>>, ProtoError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ProtoError::WrongType {
            field: k,
            expected: "an object",
        }),
    }
}

pub(crate) fn get_f64(m: &Map<String, Value>, k: &'static str) -> Result<Option<f64>, ProtoError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(ProtoError::WrongType {
            field: k,
            expected: "a number",
        }),
    }
}

pub(crate) fn get_u64(m: &Map<String, Value>, k: &'static str) -> Result<Option<u64>, ProtoError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(_) => Err(ProtoError::WrongType {
            field: k,
            expected: "a whole number of at least 0",
        }),
    }
}

pub(crate) fn get_bool(
    m: &Map<String, Value>,
    k: &'static str,
) -> Result<Option<bool>, ProtoError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ProtoError::WrongType {
            field: k,
            expected: "true or false",
        }),
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
        assert_eq!(
            eval.body.unwrap(),
            Body::Eval {
                to_evaluate: "2+3".into()
            }
        );
        let exec = parse(json!({"type": "exec", "to_exec": "print(\"Testing exec !\")"}));
        assert_eq!(exec.body.unwrap().type_name(), "exec");
        let script = parse(json!({"type": "script", "script": "print(1)"}));
        assert_eq!(
            script.body.unwrap(),
            Body::Script {
                script: "print(1)".into(),
                name: "main".into()
            }
        );
        let read = parse(json!({"type": "command", "command": "read GPIOs", "need_result": true}));
        assert_eq!(
            read.body.unwrap(),
            Body::Command(Command::ReadGpios { pins: None })
        );
    }

    #[test]
    fn message_type_is_an_alias_of_type() {
        let m =
            parse(json!({"message_type": "function", "function": "blink", "kwargs": {"times": 2}}));
        let Body::Function { name, kwargs, .. } = m.body.unwrap() else {
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

    #[test]
    fn stamp_fills_only_missing_envelope_fields() {
        let me = NodeName::parse("cli-1").unwrap();
        let mut r = Request::eval("2+3");
        r.fields.insert("reply_to".into(), "other".into());
        let id = r.stamp(&me, "pi-1", 1.5);
        assert_eq!(r.fields["message_id"], id.as_str());
        assert_eq!(r.fields["sender"], "cli-1");
        assert_eq!(r.fields["reply_to"], "other");
        assert_eq!(r.fields["receiver"], "pi-1");
    }
}
