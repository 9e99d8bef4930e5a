//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{name}`: presence as the hub's registry holds it.
//! Every logged-in user may see the fleet (viewers exist for that).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use plastic_proto::{NodeState, Presence};
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// The presence as the node sent it, plus `age`: how many seconds old it is (its `uptime` and
/// `mem_free` are as of then).
#[derive(Serialize)]
pub struct Listed {
    #[serde(flatten)]
    presence: Presence,
    age: f64,
}

/// A presence's age: at least the time since the hub's client received it; for `online` and
/// `offline`, which are stamped when published, the time since `since` when the node's clock
/// looks set (a presence retained at a broker before this hub started is older than its
/// arrival). Not for `lost`: a will is stamped when the connection began.
fn age_of(p: &Presence, received: Instant, now: f64) -> f64 {
    let seen = received.elapsed().as_secs_f64();
    let by_clock = now - p.since;
    let clock_set = p.since > 1.6e9 && (0.0..10.0 * 365.0 * 86_400.0).contains(&by_clock);
    let age = if p.state != NodeState::Lost && clock_set {
        seen.max(by_clock)
    } else {
        seen
    };
    (age * 1000.0).round() / 1000.0
}

fn listed((presence, received): (Presence, Instant), now: f64) -> Listed {
    Listed {
        age: age_of(&presence, received, now),
        presence,
    }
}

pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<Listed>> {
    // The registry's client follows every change; its snapshot is current, in name order.
    let nodes = state.client.known_nodes_received();
    let now = plastic_hub::history::unix_now();
    Json(nodes.into_iter().map(|n| listed(n, now)).collect())
}

/// A node name from a path, checked before anything else looks at it (length, characters).
pub fn node_name(name: &str) -> Result<plastic_proto::NodeName, ApiError> {
    plastic_proto::NodeName::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Listed>, ApiError> {
    node_name(&name)?;
    let now = plastic_hub::history::unix_now();
    let found = state.client.presence_received_of(&name);
    found.map(|n| Json(listed(n, now))).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "UnknownNode",
            format!(
                "no node named `{}` has announced itself",
                name.escape_debug()
            ),
        )
    })
}

/// `GET /api/v1/nodes/{name}/log`: the node's recent log lines and events, oldest first (what
/// `plastic logs NODE` prints). Users other than admins see only nodes they may reach.
pub async fn log(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    Path(name): Path<String>,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    node_name(&name)?;
    let everything = caller.via == crate::auth::Via::Open
        || caller.role == Some(plastic_hub::users::Role::Admin);
    let reaches = everything
        || state
            .policy
            .as_ref()
            .is_some_and(|p| p.reaches(&caller.user, &name));
    if !reaches {
        return Err(ApiError::forbidden(format!(
            "{} may not reach {}",
            caller.user,
            name.escape_debug()
        )));
    }
    Ok(Json(state.tails.lock().unwrap().tail(&name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn presence(state: NodeState, since: f64) -> Presence {
        Presence::parse(
            serde_json::json!({"name": "n", "state": state.as_str(), "since": since})
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn ages_trust_a_set_clock_but_never_go_below_the_arrival() {
        let now = 1.8e9;
        let arrived = Instant::now() - Duration::from_secs(5);
        // Retained for an hour before this hub saw it: the node's clock says so.
        assert_eq!(
            age_of(&presence(NodeState::Online, now - 3600.0), arrived, now).round(),
            3600.0
        );
        // A board whose clock was never set (year 2000): only the arrival counts.
        assert_eq!(
            age_of(&presence(NodeState::Online, 1e6), arrived, now).round(),
            5.0
        );
        // A clock ahead of the hub's: not younger than its arrival.
        assert_eq!(
            age_of(&presence(NodeState::Online, now + 60.0), arrived, now).round(),
            5.0
        );
        // A will is stamped at connect: its `since` says nothing about when it was published.
        assert_eq!(
            age_of(&presence(NodeState::Lost, now - 86_400.0), arrived, now).round(),
            5.0
        );
    }
}
