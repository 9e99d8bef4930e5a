//! `GET /api/v1/nodes` and `GET /api/v1/nodes/{name}`: presence as the hub's registry holds it.
//! Every logged-in user may see the fleet (viewers exist for that).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use plastic_proto::Presence;

use crate::error::ApiError;
use crate::state::AppState;

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Presence>>, ApiError> {
    let mut nodes = state
        .client
        .nodes(Duration::from_secs(5))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(nodes))
}

pub async fn one(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Presence>, ApiError> {
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
