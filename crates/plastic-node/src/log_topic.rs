//! The node's `log` topic: JSON lines, in the order they were written, never blocking.

use std::borrow::Cow;
use std::time::SystemTime;

use plastic_client::Client;
use plastic_proto::{unix_seconds, NodeName};
use rumqttc::QoS;
use serde_json::json;
use tokio::sync::mpsc;

/// Log lines waiting for the broker, at most.
const LOG_QUEUE: usize = 1024;
/// Longest log line text; longer output is cut (a script printing megabytes in one line).
const MAX_LOG_TEXT: usize = 16 * 1024;

/// Writes lines to the node's log topic. Cheap to clone; usable from any thread.
#[derive(Clone)]
pub struct LogTopic {
    name: NodeName,
    /// Lines go through one task so they reach the broker in the order they were written.
    lines: mpsc::Sender<Vec<u8>>,
}

impl LogTopic {
    /// Starts the task that publishes the lines on `topic`. Needs a tokio runtime.
    pub fn start(client: Client, topic: String, name: NodeName) -> Self {
        let (lines, mut queue) = mpsc::channel::<Vec<u8>>(LOG_QUEUE);
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                let _ = client.publish(&topic, line, QoS::AtMostOnce, false).await;
            }
        });
        LogTopic { name, lines }
    }

    /// A line for the log topic (docs/protocol.md, "Topics"). `source` is `script:<name>`,
    /// `node`, `python` or `reply`; `level` is `info` or `error`.
    pub fn line(&self, source: &str, level: &str, text: &str) {
        let line = json!({
            "time": unix_seconds(SystemTime::now()),
            "node": self.name.as_str(),
            "source": source,
            "level": level,
            "text": clip(text, MAX_LOG_TEXT),
        });
        // Fire and forget: logging must never block a script or the message loop. While the
        // broker is away the queue fills; then lines are dropped rather than piled up.
        if self.lines.try_send(line.to_string().into_bytes()).is_err() {
            tracing::debug!("log queue full; a line was dropped");
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary, with a note when cut.
fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}... [cut: {} bytes in all]", &text[..cut], text.len()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("ééé", 3), "é... [cut: 6 bytes in all]");
    }
}
