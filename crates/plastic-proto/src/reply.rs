//! Replies: `{"type": "result", "correlation_id": ..., "ok": true, "result": ...}` or
//! `"ok": false` with `"error": {"kind", "message", "traceback"}`, plus captured `stdout`.
//!
//! `result` is always present on success, also when it is `null`, `0`, `false`, `""` or `[]`:
//! the seed's later version dropped falsy results, and a client could not tell "no reply" from
//! "the answer is 0".

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ProtoError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The exception type (`ZeroDivisionError`) or a protocol refusal (`BadPath`, `Timeout`...).
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub traceback: String,
}

impl ErrorInfo {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: kind.into(),
            message: message.into(),
            traceback: String::new(),
        }
    }
}

impl From<&ProtoError> for ErrorInfo {
    fn from(e: &ProtoError) -> Self {
        ErrorInfo::new(e.kind(), e.to_string())
    }
}

/// Why a reply has no typed output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    #[error("{}: {}", .0.kind, .0.message)]
    Failed(ErrorInfo),
    #[error("the node's reply does not have the documented shape: {0}")]
    Shape(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(rename = "type")]
    pub kind: String,
    pub correlation_id: String,
    pub ok: bool,
    #[serde(default)]
    pub result: Value,
    /// True when `result` is the `repr()` of a value JSON cannot hold.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repr: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<f64>,
}

impl Reply {
    /// The `type` of every reply.
    pub const TYPE: &'static str = "result";

    pub fn ok(correlation_id: &str, result: Value) -> Self {
        Reply {
            kind: Self::TYPE.into(),
            correlation_id: correlation_id.into(),
            ok: true,
            result,
            repr: false,
            error: None,
            stdout: String::new(),
            sender: None,
            receiver: None,
            message_id: None,
            time_stamp: None,
        }
    }

    pub fn err(correlation_id: &str, error: ErrorInfo) -> Self {
        Reply {
            ok: false,
            error: Some(error),
            ..Reply::ok(correlation_id, Value::Null)
        }
    }

    pub fn with_stdout(mut self, stdout: String) -> Self {
        self.stdout = stdout;
        self
    }

    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        serde_json::from_value(Value::Object(m.clone())).map_err(|e| ProtoError::Invalid {
            field: "result",
            reason: e.to_string(),
        })
    }

    /// A successful reply's `result` as the operation's typed output. An error reply, or a
    /// result of another shape (a node that does not follow docs/protocol.md), is an error
    /// that says which.
    pub fn output<O: crate::command::Operation>(&self, _op: &O) -> Result<O::Output, ReplyError> {
        self.decode()
    }

    /// [`Reply::output`] by type.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, ReplyError> {
        if !self.ok {
            return Err(ReplyError::Failed(self.error.clone().unwrap_or_else(
                || ErrorInfo::new("RemoteError", "error reply without details"),
            )));
        }
        T::deserialize(&self.result).map_err(|e| ReplyError::Shape(e.to_string()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A pool member's notice that it took a request from the pool's topic, published to the
/// request's `reply_to` before it runs it (docs/protocol.md, "Pools"). It names the one node
/// whose fate decides the request's. Not a reply and not a request: nodes ignore it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Taken {
    #[serde(rename = "type")]
    pub kind: String,
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<f64>,
}

impl Taken {
    pub const TYPE: &'static str = "taken";

    pub fn new(correlation_id: &str, sender: &str) -> Self {
        Taken {
            kind: Self::TYPE.into(),
            correlation_id: correlation_id.into(),
            sender: Some(sender.into()),
            message_id: Some(crate::new_message_id()),
            time_stamp: Some(crate::unix_seconds(std::time::SystemTime::now())),
        }
    }

    pub(crate) fn from_map(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        serde_json::from_value(Value::Object(m.clone())).map_err(|e| ProtoError::Invalid {
            field: "taken",
            reason: e.to_string(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn falsy_results_survive_a_round_trip() {
        for v in [json!(0), json!([]), json!(false), json!(""), json!(null)] {
            let r = Reply::ok("c1", v.clone());
            let back: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
            assert_eq!(back["result"], v, "falsy {v} must be sent");
            assert!(back.as_object().unwrap().contains_key("result"));
            assert_eq!(back["ok"], true);
        }
    }

    #[test]
    fn error_replies_carry_kind_message_traceback() {
        let mut e = ErrorInfo::new("ZeroDivisionError", "division by zero");
        e.traceback = "Traceback (most recent call last):\n...".into();
        let r = Reply::err("c2", e);
        let back: Value = serde_json::from_slice(&r.to_bytes()).unwrap();
        assert_eq!(back["ok"], false);
        assert_eq!(back["error"]["kind"], "ZeroDivisionError");
        assert!(back["error"]["traceback"]
            .as_str()
            .unwrap()
            .starts_with("Traceback"));
    }
}
