//! `GET /api/v1/history?node=&user=&since=&failed=&kind=&limit=`: the hub's history
//! (`plastic_hub::history`). Admins (and everyone, without a users file) see every row; other
//! users see the rows about nodes they may reach and their own requests.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::{Extension, Json};
use plastic_hub::history::{self, Row};
use plastic_hub::users::Role;

use crate::auth::{Caller, Via};
use crate::error::ApiError;
use crate::state::AppState;

pub async fn query(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<history::Query>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Row>>, ApiError> {
    let Query(mut q) = q?;
    let everything = caller.via == Via::Open || caller.role == Some(Role::Admin);
    let wanted = q.limit.unwrap_or(100).min(history::QUERY_MAX);
    if !everything {
        // Rows this caller may not see are dropped after the query: ask for more.
        q.limit = Some(history::QUERY_MAX);
    }
    let Some(path) = state.history.clone() else {
        return Err(ApiError::unavailable(
            "this hub keeps no history (started with --history off, or on an external broker)",
        ));
    };
    let rows = tokio::task::spawn_blocking(move || history::query(&path, &q))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    if everything {
        return Ok(Json(rows));
    }
    let policy = state.policy.as_ref();
    let own = caller.label();
    let rows = rows
        .into_iter()
        .filter(|r| {
            r.user.as_deref() == Some(own.as_str())
                || r.user.as_deref() == Some(caller.user.as_str())
                || r.node
                    .as_deref()
                    .is_some_and(|n| policy.is_some_and(|p| p.reaches(&caller.user, n)))
        })
        .take(wanted)
        .collect();
    Ok(Json(rows))
}
