//! Files on a node over HTTP: `PUT /api/v1/nodes/{name}/files?path=P` (the body is the file)
//! and `GET /api/v1/nodes/{name}/files?path=P` (the file). Both go through the client's
//! chunked, resumable, sha256-checked transfers, sized to the node's `max_payload`, as
//! `plastic cp` does. Listing and deleting are requests (`list files`, `remove file`) through
//! `POST /api/v1/requests`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use plastic_client::{UploadError, UploadFile, UploadOptions};
use plastic_hub::history::{unix_now, Record};
use plastic_proto::{NodeName, RelPath};

use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Each chunk's wait for its reply.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
pub struct FileQuery {
    path: String,
}

fn parse(
    name: &str,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(NodeName, RelPath), ApiError> {
    let Query(q) = q?;
    let node = crate::nodes::node_name(name)?;
    let path = RelPath::parse(&q.path).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((node, path))
}

/// The hub's rules for `caller` sending a message of this shape to `node`.
fn authorise(
    state: &AppState,
    caller: &Caller,
    node: &NodeName,
    shape: &[u8],
) -> Result<(), ApiError> {
    let Some(policy) = state.policy.as_ref() else {
        return Ok(());
    };
    let topic = state.client.topics().inbox(node);
    policy
        .check_request_for(&caller.user, &topic, shape)
        .map_err(|denial| {
            state
                .observer
                .request_refused(&caller.label(), &denial.reason);
            ApiError::forbidden(denial.reason)
        })
}

fn online(state: &AppState, node: &NodeName) -> Result<(), ApiError> {
    match state.client.presence_of(node.as_str()) {
        Some(p) if p.state == plastic_proto::NodeState::Online => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NodeNotOnline",
            format!("{node} is not online"),
        )),
    }
}

/// The node's own refusal (`BadPath`, `FileNotFoundError`...), as the API's error.
fn refused(
    status: StatusCode,
    reply: &plastic_proto::Reply,
    e: &dyn std::fmt::Display,
) -> ApiError {
    let message = match &reply.error {
        Some(x) => format!("{}: {}", x.kind, x.message),
        None => e.to_string(),
    };
    ApiError::new(status, "Refused", message)
}

fn record(state: &AppState, caller: &Caller, node: &NodeName, ty: &str) {
    state.observer.history.record(Record::Request {
        at: unix_now(),
        id: plastic_proto::new_message_id(),
        user: caller.label(),
        ty: ty.to_owned(),
        target: node.to_string(),
    });
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (node, path) = parse(&name, q)?;
    authorise(&state, &caller, &node, br#"{"type":"file"}"#)?;
    online(&state, &node)?;
    // Read only now, after the rights: a caller who may not upload cannot make the hub hold
    // 16 MiB.
    let body: Bytes = axum::body::to_bytes(body, crate::UPLOAD_MAX)
        .await
        .map_err(|e| {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PayloadTooLarge",
                    format!("a file over HTTP is at most {} bytes", crate::UPLOAD_MAX),
                )
            } else {
                ApiError::bad_request(format!("the upload's body could not be read: {e}"))
            }
        })?;
    let size = body.len();
    let file =
        UploadFile::new(path.clone(), body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    record(&state, &caller, &node, "file");
    let done = state
        .client
        .upload(&node, &file, &UploadOptions::new(CHUNK_TIMEOUT))
        .await
        .map_err(|e| match &e {
            UploadError::Refused(reply) => refused(StatusCode::UNPROCESSABLE_ENTITY, reply, &e),
            _ => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "UploadFailed", e.to_string()),
        })?;
    Ok(Json(json!({
        "node": node.as_str(),
        "path": path.as_str(),
        "size": size,
        "sha256": done.result.sha256,
    })))
}

pub async fn download(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let (node, path) = parse(&name, q)?;
    authorise(
        &state,
        &caller,
        &node,
        br#"{"type":"command","command":"read file"}"#,
    )?;
    online(&state, &node)?;
    record(&state, &caller, &node, "command:read file");
    let mut data = Vec::new();
    let mut sink = |chunk: &[u8]| {
        if data.len() + chunk.len() > crate::UPLOAD_MAX {
            return Err(std::io::Error::other(format!(
                "a file over HTTP is at most {} bytes",
                crate::UPLOAD_MAX
            )));
        }
        data.extend_from_slice(chunk);
        Ok(())
    };
    state
        .client
        .download(&node, &path, &[], None, CHUNK_TIMEOUT, &mut sink)
        .await
        .map_err(|e| match &e {
            plastic_client::DownloadError::Refused(reply) => {
                refused(StatusCode::NOT_FOUND, reply, &e)
            }
            plastic_client::DownloadError::Local(_) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                e.to_string(),
            ),
            _ => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "DownloadFailed", e.to_string()),
        })?;
    let file_name: String = path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or("file")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        data,
    )
        .into_response())
}
