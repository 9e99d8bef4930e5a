//! `POST /api/v1/requests`: any protocol message (the seed's dicts as written, every type and
//! built-in command of docs/protocol.md) to a TARGET (a node, a comma list, a glob,
//! `group:NAME`, `pool:NAME`, `all`), answered with every node's outcome.
//!
//! parse (target, message) -> authorise (the hub's rules, for the caller) -> record (history)
//! -> send and wait (the hub's client) -> reply (one entry per node: its reply, or why none).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use plastic_client::{resolve_in, ClientError, Resolved, Target};
use plastic_hub::history::{unix_now, Record};
use plastic_hub::metrics::type_label;
use plastic_proto::{NodeName, Reply, Request};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Envelope fields a caller may not set; the hub's client writes them.
pub const ENVELOPE: &[&str] = &[
    "message_id",
    "sender",
    "receiver",
    "reply_to",
    "time_stamp",
    "sig",
];

/// A request's wait when the call names none, and the longest it may name.
pub const DEFAULT_TIMEOUT: f64 = 10.0;
pub const MAX_TIMEOUT: f64 = 300.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    target: String,
    message: Map<String, Value>,
    /// Seconds to wait for the replies.
    #[serde(default)]
    timeout: Option<f64>,
    /// `false`: send and return the message ids without waiting.
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<NewRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(new) = body?;
    let timeout = new.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if !(timeout > 0.0 && timeout <= MAX_TIMEOUT) {
        return Err(ApiError::bad_request(format!(
            "timeout must be more than 0 and at most {MAX_TIMEOUT} seconds"
        )));
    }
    let timeout = Duration::from_secs_f64(timeout);
    let spec = Target::parse(&new.target).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let ty = match new.message.get("type").or(new.message.get("message_type")) {
        Some(Value::String(t)) => t.clone(),
        _ => return Err(ApiError::bad_request(
            "message must have a `type` (eval, exec, function, apply, command, script, file...)",
        )),
    };
    let command = new
        .message
        .get("command")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let label = type_label(&ty, command.as_deref());
    let mut message = new.message;
    // The envelope is the hub's to write: a caller choosing `reply_to` or `message_id` could
    // have a node answer into someone else's inbox, as someone else's request (the MQTT side
    // refuses that through the sender rule; here the hub's client is the sender).
    for field in ENVELOPE {
        message.remove(*field);
    }
    let mut request = Request::new(message);
    request.set_need_result(new.wait);
    // The registry follows every presence change: what it holds is current, no broker
    // round trip needed (that would add tens of milliseconds to every call).
    let fleet = state.client.known_nodes();
    let topics = state.client.topics().clone();
    let resolved =
        resolve_in(&spec, &fleet, &topics).map_err(|e| ApiError::bad_request(e.to_string()))?;
    authorise(&state, &caller, &resolved, &request, &topics)?;
    let unreachable: Vec<Value> = resolved
        .unreachable
        .iter()
        .map(|(node, why)| json!({"node": node, "ok": false, "error": {"kind": "NodeNotOnline", "message": why}}))
        .collect();
    if resolved.nodes.is_empty() && resolved.unreachable.is_empty() {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "NoTarget",
            format!(
                "no online node is targeted by `{}`",
                new.target.escape_debug()
            ),
        ));
    }
    let record = |id: &str, target: &str| {
        state.observer.history.record(Record::Request {
            at: unix_now(),
            id: id.to_owned(),
            user: caller.label(),
            ty: label.clone(),
            target: target.to_owned(),
        })
    };
    let client = &state.client;
    let mut results = unreachable;
    let one_topic = resolved
        .pool
        .as_ref()
        .map(|p| topics.pool_inbox(p).map(|t| (t, format!("pool:{p}"))))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .or(resolved.broadcast.clone());
    let signs = client
        .signs_for_any(&resolved.nodes)
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if !new.wait {
        let mut sent = Vec::new();
        match one_topic.filter(|_| !signs || resolved.pool.is_some()) {
            Some((topic, receiver)) => {
                let id = request.stamp(client.name(), &receiver, unix_now());
                record(&id, &receiver);
                client
                    .publish(&topic, request.to_bytes(), rumqttc::QoS::AtLeastOnce, false)
                    .await
                    .map_err(|e| ApiError::unavailable(e.to_string()))?;
                sent.push(json!({"target": receiver, "message_id": id}));
            }
            None => {
                for node in &resolved.nodes {
                    let mut r = request.clone();
                    let id = plastic_proto::new_message_id();
                    r.fields.insert("message_id".into(), id.clone().into());
                    record(&id, node.as_str());
                    // One node that cannot be sent to does not hide what went to the others.
                    match client.send(node, r).await {
                        Ok(_) => sent.push(json!({"target": node.as_str(), "message_id": id})),
                        Err(e) => {
                            state.observer.history.record(Record::Outcome {
                                at: unix_now(),
                                id: id.clone(),
                                node: node.to_string(),
                                ok: false,
                                error: Some(format!("NotSent: {e}")),
                            });
                            sent.push(json!({
                                "target": node.as_str(),
                                "message_id": id,
                                "error": {"kind": "NotSent", "message": e.to_string()},
                            }));
                        }
                    }
                }
            }
        }
        return Ok(Json(json!({"sent": sent, "results": results})));
    }
    let outcomes: Vec<(String, Result<Reply, ClientError>)> = if let Some(pool) = &resolved.pool {
        let id = plastic_proto::new_message_id();
        request
            .fields
            .insert("message_id".into(), id.clone().into());
        record(&id, &format!("pool:{pool}"));
        vec![client
            .request_pool(pool, request, timeout)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?]
    } else if let (Some((topic, receiver)), false) = (&resolved.broadcast, signs) {
        let id = plastic_proto::new_message_id();
        request
            .fields
            .insert("message_id".into(), id.clone().into());
        record(&id, receiver);
        client
            .request_many(topic, receiver, request, &resolved.nodes, timeout)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))?
    } else {
        let mut set = JoinSet::new();
        for node in resolved.nodes.clone() {
            let client = client.clone();
            let mut r = request.clone();
            let id = plastic_proto::new_message_id();
            r.fields.insert("message_id".into(), id.clone().into());
            record(&id, node.as_str());
            set.spawn(async move { (node.to_string(), client.request(&node, r, timeout).await) });
        }
        let mut out = Vec::new();
        while let Some(joined) = set.join_next().await {
            if let Ok(o) = joined {
                out.push(o);
            }
        }
        out
    };
    for (node, outcome) in outcomes {
        results.push(match outcome {
            Ok(reply) => {
                let mut v = serde_json::to_value(&reply).unwrap_or(Value::Null);
                if let Value::Object(m) = &mut v {
                    m.insert("node".into(), node.into());
                }
                v
            }
            Err(e) => json!({"node": node, "ok": false, "error": {"kind": e.kind(), "message": e.to_string()}}),
        });
    }
    results.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
    Ok(Json(json!({"results": results})))
}

/// The hub's access rules for this caller, on every topic the request will be published to.
/// Without a users file everything is allowed (loopback only, as on the MQTT side).
fn authorise(
    state: &AppState,
    caller: &Caller,
    resolved: &Resolved,
    request: &Request,
    topics: &plastic_proto::Topics,
) -> Result<(), ApiError> {
    let Some(policy) = state.policy.as_ref() else {
        return Ok(());
    };
    let payload = request.to_bytes();
    let mut destinations: Vec<String> = Vec::new();
    if let Some(pool) = &resolved.pool {
        destinations.push(
            topics
                .pool_inbox(pool)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    if let Some((topic, _)) = &resolved.broadcast {
        destinations.push(topic.clone());
        // A signed broadcast goes to each node separately: check those too.
        destinations.extend(resolved.nodes.iter().map(|n| topics.inbox(n)));
    }
    if resolved.pool.is_none() && resolved.broadcast.is_none() {
        destinations.extend(resolved.nodes.iter().map(|n: &NodeName| topics.inbox(n)));
    }
    for topic in destinations {
        if let Err(denial) = policy.check_request_for(&caller.user, &topic, &payload) {
            state
                .observer
                .request_refused(&caller.label(), &denial.reason);
            return Err(ApiError::forbidden(denial.reason));
        }
    }
    Ok(())
}
