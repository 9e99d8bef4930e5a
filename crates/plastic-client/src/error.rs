use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid broker URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no reply from {node} within {} s", seconds_text(*seconds))]
    Timeout { node: String, seconds: f64 },
    #[error("not sent to {node}: {window} earlier requests to it were still waiting for replies after {} s; this one never left the client", seconds_text(*seconds))]
    NotSent {
        node: String,
        window: usize,
        seconds: f64,
    },
    #[error("node {node} went {state} before answering; the request may or may not have run")]
    NodeLost { node: String, state: String },
    #[error("the connection to the broker is closed")]
    Closed,
    #[error("the broker at {broker} refused the connection: {reason}")]
    Refused { broker: String, reason: String },
    #[error("cannot reach the broker at {broker} within {seconds:.1} s{}", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    Unreachable {
        broker: String,
        seconds: f64,
        last_error: Option<String>,
    },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("node key: {0}")]
    Key(String),
    #[error("MQTT client: {0}")]
    Mqtt(#[from] rumqttc::ClientError),
    #[error(transparent)]
    Proto(#[from] plastic_proto::ProtoError),
}

impl ClientError {
    /// The error's kind as outcomes name it (`Timeout`, `NodeLost`, `NotSent`; anything else
    /// is `ClientError`).
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Timeout { .. } => "Timeout",
            ClientError::NodeLost { .. } => "NodeLost",
            ClientError::NotSent { .. } => "NotSent",
            _ => "ClientError",
        }
    }
}

/// Seconds as a person reads them: `10`, `2.5`, `0.05` (not `0.0` for a short timeout).
pub fn seconds_text(seconds: f64) -> String {
    let text = format!("{seconds:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "0" {
        format!("{seconds}")
    } else {
        text.to_owned()
    }
}
