//! Typed reads of JSON object fields, shared by every parser in this crate.
//!
//! `null` counts as absent (MicroPython's `json` and the seed write `None` for "not given");
//! a present field of the wrong type is an error that names the field.

use serde_json::{Map, Value};

use crate::ProtoError;

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

/// A JSON object from `(key, value)` pairs, in order.
pub(crate) fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
