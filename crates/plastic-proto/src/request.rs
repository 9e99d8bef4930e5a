//! Requests as a client builds them: a body (any JSON object, seed dicts included) that
//! [`Request::stamp`] completes with the envelope.
//!
//! Typed requests come from [`crate::command::Operation::to_request`]; [`Request::new`] takes a
//! raw object as written (`plastic send`).

use serde_json::{Map, Value};

use crate::NodeName;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub fields: Map<String, Value>,
}

impl Request {
    pub fn new(fields: Map<String, Value>) -> Self {
        Request { fields }
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

    /// Marks the request stale `seconds` after its time stamp (the envelope's `ttl`).
    pub fn set_ttl(&mut self, seconds: f64) {
        self.fields.insert("ttl".into(), seconds.into());
    }

    /// The message type as written (`type`, or the seed's later `message_type`).
    pub fn message_type(&self) -> Option<&str> {
        self.fields
            .get("type")
            .or_else(|| self.fields.get("message_type"))
            .and_then(Value::as_str)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.fields).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Eval, Operation};

    #[test]
    fn stamp_fills_only_missing_envelope_fields() {
        let me = NodeName::parse("cli-1").unwrap();
        let mut r = Eval::new("2+3").to_request();
        r.fields.insert("reply_to".into(), "other".into());
        let id = r.stamp(&me, "pi-1", 1.5);
        assert_eq!(r.fields["message_id"], id.as_str());
        assert_eq!(r.fields["sender"], "cli-1");
        assert_eq!(r.fields["reply_to"], "other");
        assert_eq!(r.fields["receiver"], "pi-1");
    }
}
