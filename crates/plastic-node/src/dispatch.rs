//! One request in, at most one reply out.
//!
//! The rule every handler follows: a reply goes out when `need_result` is set, and always when
//! the handler failed, so nothing fails silently; a success that nobody asked about is quiet.

use std::time::SystemTime;

use plastic_proto::{
    sign, unix_seconds, Body, Envelope, ErrorInfo, Incoming, NodeKey, RelPath, Reply,
    SignatureError,
};
use serde_json::{json, Value};

use crate::commands::{self, After};
use crate::node::NodeShared;
use crate::python::Outcome;
use crate::recent::Seen;

/// Largest reply kept for answering duplicates.
const MAX_CACHED_REPLY: usize = 16 * 1024;

/// Handles one payload from the node's inbox or a broadcast topic.
pub async fn handle(node: &NodeShared, payload: &[u8]) {
    // The broker caps packets (1 MiB on the embedded hub); reading an oversized request's
    // envelope lets the node answer it instead of leaving the sender to time out.
    let incoming = match Incoming::parse_with_limit(payload, 4 * plastic_proto::MAX_PAYLOAD) {
        Ok(incoming) => incoming,
        Err(e) => {
            // Without an envelope there is nobody to answer; the log topic is the only witness.
            node.log(
                "node",
                "error",
                &format!("refused a message ({}): {e}", e.kind()),
            );
            return;
        }
    };
    let envelope = incoming.envelope;
    // Replies are not requests: never signed, never remembered (a flood of them must not push
    // requests out of the duplicate memory), and dropped below.
    let is_reply = envelope.message_type.as_deref() == Some("result");
    let signed_at = match &node.key {
        Some(key) if !is_reply => match check_signed(node, key, payload, &envelope) {
            Ok(ts) => Some(ts),
            Err(e) => {
                answer_refusal(node, &envelope, ErrorInfo::new(e.kind(), e.to_string())).await;
                return;
            }
        },
        _ => None,
    };
    if let (Some(id), false) = (&envelope.message_id, is_reply) {
        let seen = node.recent.lock().unwrap().begin(id, signed_at);
        match seen {
            Seen::New => {}
            Seen::Running => {
                tracing::debug!(%id, "duplicate of a running request ignored");
                return;
            }
            Seen::Done(reply) => {
                if let Some((topic, payload)) = reply {
                    node.resend(&topic, payload).await;
                }
                return;
            }
            Seen::Replayed => {
                let e = SignatureError::Replayed(format!(
                    "message_id {id} may have run before (stamped before the last {} requests or this node's start); a signed request runs at most once",
                    crate::recent::CAPACITY
                ));
                answer_refusal(node, &envelope, ErrorInfo::new(e.kind(), e.to_string())).await;
                return;
            }
        }
    }
    let expired = clock_is_set()
        .then(now)
        .and_then(|t| envelope.expired_by(t));
    let (outcome, after) = match (incoming.body, expired) {
        (Ok(Body::Result(reply)), _) => {
            tracing::debug!(correlation_id = %reply.correlation_id, "reply for nobody waiting; dropped");
            return;
        }
        (Err(e), _) if envelope.message_type.as_deref() == Some("result") => {
            // Answering a broken reply could start two nodes answering each other forever.
            node.log(
                "node",
                "error",
                &format!("refused a message ({}): {e}", e.kind()),
            );
            return;
        }
        (_, Some(late)) => {
            let message = format!(
                "the request's time to live ran out {late:.3} s before it arrived; it was not run"
            );
            (
                Outcome::error(ErrorInfo::new("Expired", message)),
                After::Nothing,
            )
        }
        (Err(e), None) => (Outcome::error(ErrorInfo::from(&e)), After::Nothing),
        (Ok(body), None) => {
            let deadline = clock_is_set().then(|| envelope.deadline()).flatten();
            run(node, body, deadline).await
        }
    };
    let message_id = envelope.message_id.clone().unwrap_or_default();
    let failed = outcome.result.is_err();
    let mut sent = None;
    if envelope.need_result || failed {
        let mut reply = match outcome.result {
            Ok((value, repr)) => Reply {
                repr,
                ..Reply::ok(&message_id, value)
            },
            Err(error) => Reply::err(&message_id, error),
        }
        .with_stdout(outcome.stdout);
        reply.sender = Some(node.name.to_string());
        reply.message_id = Some(plastic_proto::new_message_id());
        reply.time_stamp = Some(unix_seconds(SystemTime::now()));
        match envelope.reply_target() {
            Some(target) => {
                reply.receiver = Some(target.to_string());
                sent = Some(node.send_reply(&target, &reply).await);
            }
            None => {
                let text = String::from_utf8_lossy(&reply.to_bytes()).into_owned();
                node.log("reply", if failed { "error" } else { "info" }, &text);
            }
        }
    } else if !outcome.stdout.is_empty() {
        // Nobody asked for the result, but printed output should not vanish.
        node.log("node", "info", outcome.stdout.trim_end());
    }
    if let Some(id) = &envelope.message_id {
        // Big replies are not kept: 4,096 of them could take a gigabyte. A duplicate of such a
        // request gets no second reply (its first is on its way).
        let kept = sent.filter(|(_, payload)| payload.len() <= MAX_CACHED_REPLY);
        node.recent.lock().unwrap().finish(id, kept);
    }
    if after == After::Reset {
        node.reset().await;
    }
}

fn now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// A clock before 2020 is a clock nobody set; freshness cannot be judged with it.
fn clock_is_set() -> bool {
    now() > 1_577_836_800.0
}

/// The checks of docs/protocol.md, "Signed requests", up to the replay check (which
/// [`Recent::begin`](crate::recent::Recent::begin) makes atomically with recording the id).
/// Returns the request's time stamp.
///
/// A copy of a request this node remembers is a duplicate (a client resending after a
/// reconnect sends the very same bytes, time stamp included): it skips the freshness check,
/// which it would fail once `max_skew` has passed, and gets the first reply.
fn check_signed(
    node: &NodeShared,
    key: &NodeKey,
    payload: &[u8],
    envelope: &Envelope,
) -> Result<f64, SignatureError> {
    key.verify(payload)?;
    let id = envelope.message_id.as_deref().unwrap_or_default();
    if id.is_empty() {
        return Err(SignatureError::Replayed(
            "a signed request needs a message_id".into(),
        ));
    }
    let known = node.recent.lock().unwrap().knows(id);
    if known {
        sign::check_receiver(envelope, node.name.as_str())?;
    } else {
        sign::check_envelope(
            envelope,
            node.name.as_str(),
            now(),
            node.started_at,
            node.max_skew,
        )?;
    }
    Ok(envelope.time_stamp.unwrap_or_default())
}

/// Answers a request with `error` without running it (the node is over a limit).
pub async fn refuse(node: &NodeShared, payload: &[u8], error: ErrorInfo) {
    let Ok(incoming) = Incoming::parse_with_limit(payload, 4 * plastic_proto::MAX_PAYLOAD) else {
        node.log(
            "node",
            "error",
            &format!("refused a message ({}): {}", error.kind, error.message),
        );
        return;
    };
    // A copy of a request already running or done (clients resend after reconnects) is not new
    // work: answering it `Busy` would give its sender a second, wrong reply.
    let known = incoming
        .envelope
        .message_id
        .as_deref()
        .is_some_and(|id| node.recent.lock().unwrap().knows(id));
    if known {
        return Box::pin(handle(node, payload)).await;
    }
    let sent = answer_refusal(node, &incoming.envelope, error).await;
    // The refusal is this request's one outcome: a copy resent later gets it again instead of
    // running (or the sender would see `Busy` for a request that ran). Unless the request could
    // not be authenticated: then its id must not be taken for the real one.
    let authentic = node.key.as_ref().is_none_or(|k| k.verify(payload).is_ok());
    if let (Some(id), true) = (&incoming.envelope.message_id, authentic) {
        let mut recent = node.recent.lock().unwrap();
        if recent.begin(id, None) == Seen::New {
            recent.finish(id, sent);
        }
    }
}

/// Sends the error reply of a request that was not run, and notes it on the log topic.
async fn answer_refusal(
    node: &NodeShared,
    envelope: &Envelope,
    error: ErrorInfo,
) -> Option<(String, Vec<u8>)> {
    tracing::warn!(kind = %error.kind, sender = ?envelope.sender, "refused a request: {}", error.message);
    node.log(
        "node",
        "error",
        &format!(
            "refused a request from {} ({}): {}",
            envelope.sender.as_deref().unwrap_or("?"),
            error.kind,
            error.message
        ),
    );
    let mut reply = Reply::err(envelope.message_id.as_deref().unwrap_or_default(), error);
    reply.sender = Some(node.name.to_string());
    reply.message_id = Some(plastic_proto::new_message_id());
    reply.time_stamp = Some(now());
    match envelope.reply_target() {
        Some(target) => {
            reply.receiver = Some(target.to_string());
            Some(node.send_reply(&target, &reply).await)
        }
        None => {
            node.log(
                "reply",
                "error",
                &String::from_utf8_lossy(&reply.to_bytes()),
            );
            None
        }
    }
}

/// Runs a request. `deadline` (Unix seconds) goes with Python work, which may wait its turn.
async fn run(node: &NodeShared, body: Body, deadline: Option<f64>) -> (Outcome, After) {
    let quiet = |result: Result<Value, ErrorInfo>| Outcome {
        result: result.map(|v| (v, false)),
        stdout: String::new(),
    };
    match body {
        Body::Eval { to_evaluate } => (
            node.engine().eval(to_evaluate, deadline).await,
            After::Nothing,
        ),
        Body::Exec { to_exec } => (node.engine().exec(to_exec, deadline).await, After::Nothing),
        Body::Function { name, args, kwargs } => (
            node.engine().call(name, args, kwargs, deadline).await,
            After::Nothing,
        ),
        Body::Script { script, name } => {
            let file = format!("{name}.py");
            let path = node.files.root().join(&file).to_string_lossy().into_owned();
            let engine = node.engine();
            let save = || {
                let rel = RelPath::parse(&file).map_err(|e| ErrorInfo::from(&e))?;
                node.files
                    .write_all(&rel, script.as_bytes())
                    .map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))?;
                // The script's file is a module too (`import main`): read it afresh.
                engine.forget_module(&name);
                Ok(())
            };
            let result = engine
                .start_script(&name, script.clone(), path, save)
                .await
                .map(|()| json!({"name": name, "started": true}));
            (quiet(result), After::Nothing)
        }
        Body::File(chunk) => {
            let files = node.files.clone();
            let module = chunk
                .is_last()
                .then(|| chunk.filename.module_name().map(str::to_owned))
                .flatten();
            let result = tokio::task::spawn_blocking(move || files.write_chunk(&chunk))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()));
            if let (Ok(_), Some(module)) = (&result, module) {
                // A replaced module must be read again by the next `import`.
                node.engine().forget_module(&module);
            }
            (
                quiet(result.map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))),
                After::Nothing,
            )
        }
        Body::Command(command) => {
            let (result, after) = commands::apply(node, command).await;
            (quiet(result), after)
        }
        // `handle` drops results before they get here; refuse rather than trust that.
        Body::Result(_) => (
            Outcome::error(ErrorInfo::new("ProtocolError", "a result is not a request")),
            After::Nothing,
        ),
    }
}
