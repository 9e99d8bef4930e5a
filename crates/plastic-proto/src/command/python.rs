//! Python on the node: `eval` (a value back), `exec` (statements, `null` back) and `function`
//! (calls a callable of the node's namespace); the `interrupt` command ends them early.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuiltIn, Operation, Reply};
use crate::fields::{get_object, get_str, object};
use crate::{Capability, ProtoError, Request};

#[derive(Debug, Clone, PartialEq)]
pub struct Eval {
    pub to_evaluate: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    pub to_exec: String,
}

/// Calls a callable in the node's namespace; a dotted name reaches into modules.
#[derive(Debug, Clone, PartialEq)]
pub struct Function {
    pub name: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

/// Defines a function from its source in the node's namespace and calls it: IPython
/// Parallel's `apply`, in one request (a pool member gets the definition with the call).
#[derive(Debug, Clone, PartialEq)]
pub struct Apply {
    pub source: String,
    pub name: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
}

impl Apply {
    pub const TYPE: &'static str = "apply";

    pub(crate) fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        let source = get_str(m, "source")?.ok_or(ProtoError::Missing("source"))?;
        let name = get_str(m, "name")?.ok_or(ProtoError::Missing("name"))?;
        if !is_identifier(name) {
            return Err(ProtoError::Invalid {
                field: "name",
                reason: format!("`{name}` is not a Python name"),
            });
        }
        let call = Function::parse(&object([
            ("function", name.into()),
            ("args", m.get("args").cloned().unwrap_or(Value::Null)),
            ("kwargs", m.get("kwargs").cloned().unwrap_or(Value::Null)),
        ]))?;
        Ok(Apply {
            source: source.to_owned(),
            name: call.name,
            args: call.args,
            kwargs: call.kwargs,
        })
    }
}

impl Operation for Apply {
    type Output = Value;
    /// `exec`: it ships code to run.
    fn capability(&self) -> Capability {
        Capability::Exec
    }
    fn to_request(&self) -> Request {
        Request::new(object([
            ("type", Self::TYPE.into()),
            ("source", self.source.as_str().into()),
            ("name", self.name.as_str().into()),
            ("args", self.args.clone().into()),
            ("kwargs", self.kwargs.clone().into()),
        ]))
    }
}

impl Eval {
    pub const TYPE: &'static str = "eval";

    pub fn new(code: impl Into<String>) -> Self {
        Eval {
            to_evaluate: code.into(),
        }
    }

    pub(crate) fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(Eval::new(
            get_str(m, "to_evaluate")?.ok_or(ProtoError::Missing("to_evaluate"))?,
        ))
    }
}

impl Operation for Eval {
    type Output = Value;
    fn capability(&self) -> Capability {
        Capability::Eval
    }
    fn to_request(&self) -> Request {
        Request::new(object([
            ("type", Self::TYPE.into()),
            ("to_evaluate", self.to_evaluate.as_str().into()),
        ]))
    }
}

impl Exec {
    pub const TYPE: &'static str = "exec";

    pub fn new(code: impl Into<String>) -> Self {
        Exec {
            to_exec: code.into(),
        }
    }

    pub(crate) fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(Exec::new(
            get_str(m, "to_exec")?.ok_or(ProtoError::Missing("to_exec"))?,
        ))
    }
}

impl Operation for Exec {
    /// Always `null`; what the code printed comes in the reply's `stdout`.
    type Output = Value;
    fn capability(&self) -> Capability {
        Capability::Exec
    }
    fn to_request(&self) -> Request {
        Request::new(object([
            ("type", Self::TYPE.into()),
            ("to_exec", self.to_exec.as_str().into()),
        ]))
    }
}

impl Function {
    pub const TYPE: &'static str = "function";

    /// `ARGS` as the CLI takes it: a JSON object is kwargs, an array is args, anything else
    /// the one argument.
    pub fn with_json_args(name: &str, args: Option<Value>) -> Self {
        let (args, kwargs) = match args {
            None => (vec![], Map::new()),
            Some(Value::Object(kw)) => (vec![], kw),
            Some(Value::Array(a)) => (a, Map::new()),
            Some(other) => (vec![other], Map::new()),
        };
        Function {
            name: name.to_owned(),
            args,
            kwargs,
        }
    }

    pub(crate) fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        // `name` is accepted too: the seed's later versions used it.
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
        Ok(Function {
            name: name.to_owned(),
            args,
            kwargs: get_object(m, "kwargs")?.cloned().unwrap_or_default(),
        })
    }
}

impl Operation for Function {
    type Output = Value;
    fn capability(&self) -> Capability {
        Capability::Call
    }
    fn to_request(&self) -> Request {
        Request::new(object([
            ("type", Self::TYPE.into()),
            ("function", self.name.as_str().into()),
            ("args", self.args.clone().into()),
            ("kwargs", self.kwargs.clone().into()),
        ]))
    }
}

/// Raises `KeyboardInterrupt` in the node's running or queued `eval`/`exec`/`function`
/// requests, or only in the one whose `message_id` is `id`. What Ctrl-C sends.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Interrupt {
    pub id: Option<String>,
}

/// `{"interrupted": [message ids]}`, sorted.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InterruptReply {
    pub interrupted: Vec<String>,
}

impl BuiltIn for Interrupt {
    const NAME: &'static str = "interrupt";
    /// `eval`: the sender of a Python request needs it to stop its own (Ctrl-C), and each
    /// Python capability already means arbitrary code on the node, so it grants nothing new.
    const CAPABILITY: Capability = Capability::Eval;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(Interrupt {
            id: get_str(kwargs, "id")?.map(str::to_owned),
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(id) = &self.id {
            m.insert("id".into(), id.as_str().into());
        }
        m
    }
}

impl Reply for Interrupt {
    type Output = InterruptReply;
}

impl InterruptReply {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self.interrupted.len() {
            0 => "nothing to interrupt".to_owned(),
            _ => format!("interrupted: {}", self.interrupted.join(", ")),
        }
    }
}

/// Ends the request whose `message_id` is `id` without running it if it can: dropped while it
/// waits for its turn, interrupted while it runs, remembered (and refused `Aborted` on
/// arrival) when the node has not received it yet. What `AsyncResult.abort()` sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub id: String,
}

/// Where the aborted request was when the abort arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbortedWas {
    /// Queued behind other Python work: dropped, answered `Aborted`.
    Waiting,
    /// Running: interrupted (its reply is `KeyboardInterrupt`).
    Running,
    /// Not received yet: it will be answered `Aborted` when it arrives.
    Unseen,
    /// Already answered: nothing changed.
    Finished,
}

/// `{"aborted": id, "was": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortReply {
    pub aborted: String,
    pub was: AbortedWas,
}

impl BuiltIn for Abort {
    const NAME: &'static str = "abort";
    /// As [`Interrupt`]: stopping Python work needs what starting it needs.
    const CAPABILITY: Capability = Capability::Eval;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        match get_str(kwargs, "id")? {
            Some(id) if !id.is_empty() && id.len() <= 128 => Ok(Abort { id: id.to_owned() }),
            _ => Err(ProtoError::Invalid {
                field: "id",
                reason:
                    "abort needs `id`, the message_id of the request to abort (1 to 128 characters)"
                        .into(),
            }),
        }
    }
    fn kwargs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), self.id.as_str().into());
        m
    }
}

impl Reply for Abort {
    type Output = AbortReply;
}

impl AbortReply {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self.was {
            AbortedWas::Waiting => "aborted before it ran".to_owned(),
            AbortedWas::Running => "it was running: interrupted".to_owned(),
            AbortedWas::Unseen => {
                "not received yet: it will be refused (Aborted) when it arrives".to_owned()
            }
            AbortedWas::Finished => "it had already finished: nothing to abort".to_owned(),
        }
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use serde_json::json;

    #[test]
    fn interrupt_takes_an_optional_id_and_needs_eval() {
        let all = Command::parse("interrupt", &Map::new()).unwrap();
        assert_eq!(all, Command::Interrupt(Interrupt { id: None }));
        let one = Command::parse("interrupt", json!({"id": "ab12"}).as_object().unwrap());
        assert_eq!(
            one.unwrap(),
            Command::Interrupt(Interrupt {
                id: Some("ab12".into())
            })
        );
        let bad = Command::parse("interrupt", json!({"id": 5}).as_object().unwrap());
        assert_eq!(bad.unwrap_err().kind(), "ProtocolError");
        assert_eq!(
            crate::command::capability_for("command", Some("interrupt")),
            Some(Capability::Eval)
        );
    }

    #[test]
    fn abort_needs_an_id_and_eval_and_replies_where_the_request_was() {
        let ok = Command::parse("abort", json!({"id": "ab12"}).as_object().unwrap());
        assert_eq!(ok.unwrap(), Command::Abort(Abort { id: "ab12".into() }));
        for bad in [json!({}), json!({"id": 5}), json!({"id": ""})] {
            let err = Command::parse("abort", bad.as_object().unwrap()).unwrap_err();
            assert_eq!(err.kind(), "ProtocolError", "{bad}");
        }
        assert_eq!(
            crate::command::capability_for("command", Some("abort")),
            Some(Capability::Eval)
        );
        let abort = Command::Abort(Abort { id: "ab12".into() });
        abort
            .check_result(&json!({"aborted": "ab12", "was": "unseen"}))
            .unwrap();
        assert!(abort
            .check_result(&json!({"aborted": "ab12", "was": "gone"}))
            .is_err());
        assert!(abort
            .check_result(&json!({"aborted": "ab12", "was": "running", "x": 1}))
            .is_err());
    }

    #[test]
    fn apply_needs_source_and_a_plain_name_and_exec() {
        let ok = json!({"type": "apply", "source": "def f(x):\n    return x\n", "name": "f", "args": [1]});
        let parsed = crate::Incoming::parse(ok.to_string().as_bytes()).unwrap();
        let Ok(crate::Body::Apply(apply)) = parsed.body else {
            panic!("{parsed:?}")
        };
        assert_eq!((apply.name.as_str(), apply.args.len()), ("f", 1));
        assert_eq!(
            crate::command::capability_for("apply", None),
            Some(Capability::Exec)
        );
        for bad in [
            json!({"type": "apply", "name": "f"}),
            json!({"type": "apply", "source": "", "name": "a.b"}),
            json!({"type": "apply", "source": "", "name": "f", "args": {}}),
        ] {
            let parsed = crate::Incoming::parse(bad.to_string().as_bytes()).unwrap();
            assert_eq!(parsed.body.unwrap_err().kind(), "ProtocolError", "{bad}");
        }
    }

    #[test]
    fn interrupt_replies_list_ids_and_nothing_else() {
        let reply = json!({"interrupted": ["ab12"]});
        Command::Interrupt(Interrupt::default())
            .check_result(&reply)
            .unwrap();
        assert!(Command::Interrupt(Interrupt::default())
            .check_result(&json!({"interrupted": [], "still_running": []}))
            .is_err());
        assert_eq!(InterruptReply::default().describe(), "nothing to interrupt");
        assert_eq!(
            InterruptReply {
                interrupted: vec!["a".into(), "b".into()]
            }
            .describe(),
            "interrupted: a, b"
        );
    }
}
