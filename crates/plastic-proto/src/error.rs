//! Why an input was refused. Every variant reads as a sentence a user can act on.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum ProtoError {
    #[error("payload is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("a message must be a JSON object")]
    NotAnObject,
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "unknown message type `{0}` (known: command, eval, exec, script, file, function, result)"
    )]
    UnknownType(String),
    #[error("unknown command `{name}` (known: {known})", known = known.join(", "))]
    UnknownCommand {
        name: String,
        known: &'static [&'static str],
    },
    #[error("invalid name `{name}`: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("invalid path `{path}`: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
}

impl ProtoError {
    /// The `kind` an error reply carries for this refusal.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtoError::TooLarge { .. } => "PayloadTooLarge",
            ProtoError::BadPath { .. } => "BadPath",
            ProtoError::BadName { .. } => "BadName",
            ProtoError::UnknownCommand { .. } => "UnknownCommand",
            ProtoError::UnknownType(_) => "UnknownType",
            _ => "ProtocolError",
        }
    }
}
