//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{name}`: presence as the hub's registry holds it.
//! Every logged-in user may see the fleet (viewers exist for that).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use plastic_proto::Presence;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn list(State(state): State<Arc<AppState>>) -> Json<Vec<Presence>> {
    // The registry's client follows every change; its snapshot is current.
    let mut nodes = state.client.known_nodes();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Json(nodes)
}

/// A node name from a path, checked before anything else looks at it (length, characters).
pub fn node_name(name: &str) -> Result<plastic_proto::NodeName, ApiError> {
    plastic_proto::NodeName::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Presence>, ApiError> {
    node_name(&name)?;
    state.client.presence_of(&name).map(Json).ok_or_else(|| {
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
