use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("invalid broker URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no reply from {node} within {seconds:.1} s")]
    Timeout { node: String, seconds: f64 },
    #[error("not sent to {node}: {window} earlier requests to it were still waiting for replies after {seconds:.1} s; this one never left the client")]
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
