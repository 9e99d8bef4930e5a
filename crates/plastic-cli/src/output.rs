//! Printing replies: text for people, `--json` lines for tools.
//!
//! Text mode prints a successful result on stdout and an error (type, message, traceback) on
//! stderr; with several targets every line starts with the node's name. `--json` prints one
//! object per node: `{"node", "ok", "result", "repr", "stdout", "error"}`.
//!
//! Text a node controls (names, results, printed output, errors, presence fields, log lines)
//! reaches a person's terminal only through [`shown`] or [`shown_text`]: a newline in a field
//! could forge a line, and an escape sequence could move the cursor, retitle the window or
//! write to the clipboard. `--json` output is exact (serde_json escapes what JSON must).

use std::borrow::Cow;
use std::fmt::Write as _;
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
            format!("{}: ", shown(node))
        } else {
            String::new()
        };
        match outcome {
            Ok(reply) => {
                let mut out = std::io::stdout().lock();
                // What the node printed keeps its lines (and tabs); nothing else gets through.
                for line in reply.stdout.lines() {
                    let _ = writeln!(out, "{prefix}{}", shown_text(line));
                }
                if reply.ok {
                    let text = match render {
                        Render::Quiet if reply.result.is_null() => None,
                        Render::With(f) => Some(f(&reply.result)),
                        _ if reply.repr => reply.result.as_str().map(str::to_owned),
                        _ => Some(reply.result.to_string()),
                    };
                    for line in text.iter().flat_map(|t| t.lines()) {
                        let _ = writeln!(out, "{prefix}{}", shown_text(line));
                    }
                } else if let Some(e) = &reply.error {
                    drop(out);
                    let mut err = std::io::stderr().lock();
                    if e.traceback.trim().is_empty() {
                        let _ = writeln!(err, "{prefix}{}: {}", shown(&e.kind), shown(&e.message));
                    } else {
                        for line in e.traceback.trim_end().lines() {
                            let _ = writeln!(err, "{prefix}{}", shown_text(line));
                        }
                    }
                }
            }
            Err(e) => eprintln!("{prefix}error: {}", shown(&e.to_string())),
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
            eprintln!("{}: error: {}", shown(node), shown(message));
        } else {
            eprintln!("error: {}", shown(message));
        }
    }
}

fn client_error_kind(e: &ClientError) -> &'static str {
    e.kind()
}

/// `text` for a person, on one line: control characters (C0 including newline and tab, DEL,
/// C1), line and paragraph separators and the bidirectional controls that reorder what is
/// shown are written as escapes (`\n`, `\t`, `\r`, `\x1b`, `\u{202e}`). Everything else,
/// backslashes included, is shown as is.
pub fn shown(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// [`shown`] for multi-line text (what a node printed, a traceback): newlines and tabs stay.
pub fn shown_text(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let hidden = |c: char| unsafe_for_terminal(c) && !(keep_lines && (c == '\n' || c == '\t'));
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !hidden(c) {
            out.push(c);
            continue;
        }
        let _ = match c {
            '\n' => write!(out, "\\n"),
            '\r' => write!(out, "\\r"),
            '\t' => write!(out, "\\t"),
            c if (c as u32) < 0x100 => write!(out, "\\x{:02x}", c as u32),
            c => write!(out, "\\u{{{:x}}}", c as u32),
        };
    }
    Cow::Owned(out)
}

fn unsafe_for_terminal(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' // bidi marks
            | '\u{202a}'..='\u{202e}' // embeddings and overrides
            | '\u{2066}'..='\u{2069}' // isolates
            | '\u{2028}' | '\u{2029}') // line and paragraph separators
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(shown("prod-1 online"), "prod-1 online");
        assert!(matches!(shown("plain"), Cow::Borrowed(_)));
        assert_eq!(shown("x\nprod-1 online FAKE"), "x\\nprod-1 online FAKE");
        assert_eq!(shown("a\r\tb\0"), "a\\r\\tb\\x00");
        // OSC 52 (write the clipboard), DEL, a C1 CSI.
        assert_eq!(
            shown("\x1b]52;c;aGk=\x07\x7f\u{9b}2J"),
            "\\x1b]52;c;aGk=\\x07\\x7f\\x9b2J"
        );
        assert_eq!(shown("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(
            shown("\u{2066}x\u{2069}\u{2028}"),
            "\\u{2066}x\\u{2069}\\u{2028}"
        );
        assert_eq!(shown("C:\\temp é ✓"), "C:\\temp é ✓");
    }

    #[test]
    fn multi_line_text_keeps_its_lines_and_tabs_only() {
        assert_eq!(shown_text("a\tb\nc"), "a\tb\nc");
        assert_eq!(shown_text("ok\x1b[2Jno\r"), "ok\\x1b[2Jno\\r");
    }
}
