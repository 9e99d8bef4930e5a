//! `GET /api/v1/stream`: Server-Sent Events of what happens in the fleet, as it happens:
//! `presence` (a node's new presence), `log` and `event` (what nodes publish), `request` and
//! `outcome` (requests the hub routes and their replies). A user other than an admin gets the
//! logs, events and outcomes of the nodes they may reach, and every presence (the fleet
//! table is theirs to see). A reader too slow for the flow loses the oldest items (a `lagged`
//! event says how many).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::Stream;
use plastic_hub::history::Record;
use plastic_hub::users::Role;
use serde_json::json;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use crate::auth::{Caller, Via};
use crate::state::AppState;

pub async fn events(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let everything = caller.via == Via::Open || caller.role == Some(Role::Admin);
    let reaches = {
        let state = state.clone();
        let user = caller.user.clone();
        move |node: &str| {
            everything
                || state
                    .policy
                    .as_ref()
                    .is_some_and(|p| p.reaches(&user, node))
        }
    };
    let lagged = |n: u64| Some(Event::default().event("lagged").data(n.to_string()));
    let presence =
        BroadcastStream::new(state.client.presence_events()).filter_map(move |e| match e {
            Ok(e) => Event::default()
                .event("presence")
                .json_data(&e.current)
                .ok(),
            Err(BroadcastStreamRecvError::Lagged(n)) => lagged(n),
        });
    let reach = reaches.clone();
    let activity = BroadcastStream::new(state.activity.subscribe()).filter_map(move |a| match a {
        Ok(a) if reach(&a.node) => Event::default().event(a.kind).json_data(&*a).ok(),
        Ok(_) => None,
        Err(BroadcastStreamRecvError::Lagged(n)) => lagged(n),
    });
    let reach = reaches;
    let records =
        BroadcastStream::new(state.observer.history.live()).filter_map(move |r| match r {
            Ok(Record::Request {
                at,
                id,
                user,
                ty,
                target,
            }) if everything => Event::default()
                .event("request")
                .json_data(
                    json!({"at": at, "message_id": id, "user": user, "type": ty, "target": target}),
                )
                .ok(),
            Ok(Record::Outcome {
                at,
                id,
                node,
                ok,
                error,
            }) if reach(&node) => Event::default()
                .event("outcome")
                .json_data(
                    json!({"at": at, "message_id": id, "node": node, "ok": ok, "error": error}),
                )
                .ok(),
            Ok(_) => None,
            Err(BroadcastStreamRecvError::Lagged(n)) => lagged(n),
        });
    let hello = tokio_stream::once(
        Event::default()
            .event("hello")
            .json_data(json!({"user": caller.user})),
    )
    .filter_map(Result::ok);
    let stream = hello
        .chain(presence.merge(activity).merge(records))
        .map(Ok::<_, Infallible>);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
