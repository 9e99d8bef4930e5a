//! Printing replies: text for people, `--json` lines for tools.
//!
//! Text mode prints a successful result on stdout and an error (type, message, traceback) on
//! stderr; with several targets every line starts with the node's name. `--json` prints one
//! object per node: `{"node", "ok", "result", "repr", "stdout", "error"}`.

use std::io::Write;

use plastic_client::ClientError;
use plastic_proto::Reply;
use serde_json::{json, Value};

/// How a successful result is shown in text mode.
pub enum Render {
    /// The value as compact JSON (or the repr string as is).
    Value,
    /// Only what the node printed (exec): a `null` result is not shown.
    Quiet,
    /// A one-line summary computed from the value.
    With(Box<dyn Fn(&Value) -> String + Send + Sync>),
}

impl Render {
    /// A summary of the operation's typed reply (`docs/protocol.md` lists its fields). A
    /// reply of another shape is shown as it came, saying so, rather than as `null`s.
    pub fn typed<T: serde::de::DeserializeOwned>(
        describe: impl Fn(T) -> String + Send + Sync + 'static,
    ) -> Render {
        Render::With(Box::new(move |v| match T::deserialize(v) {
            Ok(typed) => describe(typed),
            Err(e) => format!("{v} (not the documented reply: {e})"),
        }))
    }
}

pub struct Printer {
    pub json: bool,
    pub multi: bool,
}

impl Printer {
    /// Prints one node's outcome; returns whether it succeeded.
    pub fn outcome(
        &self,
        node: &str,
        outcome: &Result<Reply, ClientError>,
        render: &Render,
    ) -> bool {
        let ok = matches!(outcome, Ok(r) if r.ok);
        if self.json {
            let line = match outcome {
                Ok(r) => json!({
                    "node": node, "ok": r.ok, "result": r.result, "repr": r.repr,
                    "stdout": r.stdout, "error": r.error,
                }),
                Err(e) => {
                    json!({"node": node, "ok": false, "error": {"kind": client_error_kind(e), "message": e.to_string(), "traceback": ""}})
                }
            };
            println!("{line}");
            return ok;
        }
        let prefix = if self.multi {
            format!("{node}: ")
        } else {
            String::new()
        };
        match outcome {
            Ok(reply) => {
                let mut out = std::io::stdout().lock();
                for line in reply.stdout.lines() {
                    let _ = writeln!(out, "{prefix}{line}");
                }
                if reply.ok {
                    let text = match render {
                        Render::Quiet if reply.result.is_null() => None,
                        Render::With(f) => Some(f(&reply.result)),
                        _ if reply.repr => reply.result.as_str().map(str::to_owned),
                        _ => Some(reply.result.to_string()),
                    };
                    for line in text.iter().flat_map(|t| t.lines()) {
                        let _ = writeln!(out, "{prefix}{line}");
                    }
                } else if let Some(e) = &reply.error {
                    drop(out);
                    let mut err = std::io::stderr().lock();
                    if e.traceback.trim().is_empty() {
                        let _ = writeln!(err, "{prefix}{}: {}", e.kind, e.message);
                    } else {
                        for line in e.traceback.trim_end().lines() {
                            let _ = writeln!(err, "{prefix}{line}");
                        }
                    }
                }
            }
            Err(e) => eprintln!("{prefix}error: {e}"),
        }
        ok
    }

    /// A failure that never reached a node (unknown or offline target).
    pub fn failure(&self, node: &str, kind: &str, message: &str) {
        if self.json {
            println!(
                "{}",
                json!({"node": node, "ok": false, "error": {"kind": kind, "message": message, "traceback": ""}})
            );
        } else if self.multi {
            eprintln!("{node}: error: {message}");
        } else {
            eprintln!("error: {message}");
        }
    }
}

fn client_error_kind(e: &ClientError) -> &'static str {
    match e {
        ClientError::Timeout { .. } => "Timeout",
        ClientError::NodeLost { .. } => "NodeLost",
        _ => "ClientError",
    }
}
