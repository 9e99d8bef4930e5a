//! Files on a node over HTTP: `PUT /api/v1/nodes/{name}/files?path=P` (the body is the file)
//! and `GET /api/v1/nodes/{name}/files?path=P` (the file). Both go through the client's
//! chunked, resumable, sha256-checked transfers, sized to the node's `max_payload`, as
//! `plastic cp` does. Listing and deleting are requests (`list files`, `remove file`) through
//! `POST /api/v1/requests`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use plastic_client::{
    read_size_for, Assembly, DownloadError, Piece, UploadError, UploadFile, UploadOptions,
};
use plastic_hub::history::{unix_now, Record, Recorder};
use plastic_proto::file::MAX_FILE_SIZE;
use plastic_proto::{NodeName, RelPath};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedSemaphorePermit;
use tokio_stream::wrappers::ReceiverStream;

use serde::Deserialize;
use serde_json::json;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Each chunk's wait for its reply.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// File transfers over HTTP running at once (uploads and downloads together); more are
/// refused `503 Busy`. Each holds a chunk in memory and, for an upload, up to
/// [`MAX_FILE_SIZE`] in a temporary file.
pub const TRANSFERS_AT_ONCE: usize = 16;
/// How long an upload's body may stop coming, and a download's reader stop reading, before the
/// transfer ends (and frees its slot).
pub const BODY_IDLE: Duration = Duration::from_secs(60);

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

/// Writes the transfer's request row; [`Transfer::done`] writes its outcome under the same id,
/// so the history shows who moved which file and whether it arrived. A transfer dropped before
/// that (the HTTP client hung up mid-upload: axum drops the handler) is written `Cancelled`.
struct Transfer {
    history: Recorder,
    id: String,
    node: String,
    finished: bool,
}

impl Transfer {
    fn begin(state: &AppState, caller: &Caller, node: &NodeName, ty: &str) -> Self {
        let id = plastic_proto::new_message_id();
        state.observer.history.record(Record::Request {
            at: unix_now(),
            id: id.clone(),
            user: caller.label(),
            ty: ty.to_owned(),
            target: node.to_string(),
        });
        Transfer {
            history: state.observer.history.clone(),
            id,
            node: node.to_string(),
            finished: false,
        }
    }

    fn done(mut self, outcome: Result<(), (&str, String)>) {
        self.write(outcome);
    }

    fn write(&mut self, outcome: Result<(), (&str, String)>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let (ok, error) = match outcome {
            Ok(()) => (true, None),
            Err((kind, message)) => (false, Some(format!("{kind}: {message}"))),
        };
        self.history.record(Record::Outcome {
            at: unix_now(),
            id: self.id.clone(),
            node: self.node.clone(),
            ok,
            error,
        });
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.write(Err(("Cancelled", "the HTTP client went away".into())));
    }
}

/// One of the [`TRANSFERS_AT_ONCE`] slots, or 503.
fn transfer_slot(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.transfers).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            format!("{TRANSFERS_AT_ONCE} file transfers are running over HTTP; try again when one ends"),
        )
    })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PayloadTooLarge",
        format!("a file is at most {MAX_FILE_SIZE} bytes (what a node accepts)"),
    )
}

/// Copies the body into an unnamed temporary file (gone when closed), hashing it on the way:
/// the upload then reads one chunk at a time from there, so a 16 MiB file costs the hub a
/// chunk of memory, not 16 MiB, however many uploads run.
async fn spool(body: Body) -> Result<(std::fs::File, u64, String), ApiError> {
    let io = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "OSError",
            format!("the hub could not keep the upload in a temporary file: {e}"),
        )
    };
    let file = tokio::task::spawn_blocking(tempfile::tempfile)
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut frames = body.into_data_stream();
    loop {
        // A body that stops coming must not hold its transfer slot for ever.
        let frame = match tokio::time::timeout(BODY_IDLE, frames.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "Timeout",
                    format!("no bytes of the upload for {} s", BODY_IDLE.as_secs()),
                ))
            }
        };
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!("the upload's body could not be read: {e}"))
        })?;
        size += frame.len() as u64;
        if size > MAX_FILE_SIZE {
            return Err(too_large());
        }
        hasher.update(&frame);
        file.write_all(&frame).await.map_err(io)?;
    }
    file.flush().await.map_err(io)?;
    Ok((
        file.into_std().await,
        size,
        plastic_proto::file::hex(&hasher.finalize()),
    ))
}

pub async fn upload(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (node, path) = parse(&name, q)?;
    authorise(&state, &caller, &node, br#"{"type":"file"}"#)?;
    online(&state, &node)?;
    // A declared length too large is refused before a byte is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_FILE_SIZE) {
        return Err(too_large());
    }
    let _slot = transfer_slot(&state)?;
    // Read only now, after the rights: a caller who may not upload cannot make the hub
    // write anything.
    let (spooled, size, sha256) = spool(body).await?;
    let file = UploadFile::spooled(path.clone(), spooled, size, sha256)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let transfer = Transfer::begin(&state, &caller, &node, "file");
    match state
        .client
        .upload(&node, &file, &UploadOptions::new(CHUNK_TIMEOUT))
        .await
    {
        Ok(done) => {
            transfer.done(Ok(()));
            Ok(Json(json!({
                "node": node.as_str(),
                "path": path.as_str(),
                "size": size,
                "sha256": done.result.sha256,
            })))
        }
        Err(e) => {
            transfer.done(Err((e.kind(), e.to_string())));
            Err(match &e {
                UploadError::Refused(reply) => refused(StatusCode::UNPROCESSABLE_ENTITY, reply, &e),
                _ => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "UploadFailed", e.to_string()),
            })
        }
    }
}

fn download_error(e: &DownloadError) -> ApiError {
    match e {
        DownloadError::Refused(reply) => refused(StatusCode::NOT_FOUND, reply, e),
        _ => ApiError::new(StatusCode::GATEWAY_TIMEOUT, "DownloadFailed", e.to_string()),
    }
}

/// Streams the file as its chunks arrive from the node: the first chunk is fetched before
/// answering (a missing file is a 404 with the node's reason, and the length is known for
/// `Content-Length`); the rest follow at the reader's pace (a channel of two chunks). A
/// failure after the first chunk, or a file that changed while it was read (its sha256 is
/// checked before the last chunk is passed on), ends the body short of `Content-Length`:
/// the client sees an incomplete transfer, never a wrong file that looks whole.
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
    let slot = transfer_slot(&state)?;
    let max_payload = state
        .client
        .presence_of(node.as_str())
        .and_then(|p| p.max_payload);
    let mut assembly = Assembly::new(path.clone(), &[], read_size_for(None, max_payload));
    let transfer = Transfer::begin(&state, &caller, &node, "command:read file");
    let first = match state
        .client
        .download_step(&node, &mut assembly, CHUNK_TIMEOUT)
        .await
    {
        Ok(piece) => piece,
        Err(e) => {
            transfer.done(Err((e.kind(), e.to_string())));
            return Err(download_error(&e));
        }
    };
    let size = assembly.size().unwrap_or(0);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
    let client = state.client.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut piece = first;
        loop {
            let more = match piece {
                Piece::Last(bytes, _) => {
                    // The reader may be gone already; the file was read whole and verified.
                    let _ = tx.send_timeout(Ok(Bytes::from(bytes)), BODY_IDLE).await;
                    break transfer.done(Ok(()));
                }
                // A reader that stops reading must not hold its slot for ever.
                Piece::More(bytes) => tx.send_timeout(Ok(Bytes::from(bytes)), BODY_IDLE).await,
            };
            if more.is_err() {
                break transfer.done(Err((
                    "Cancelled",
                    "the HTTP client went away or stopped reading".into(),
                )));
            }
            piece = match client
                .download_step(&node, &mut assembly, CHUNK_TIMEOUT)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx
                        .send_timeout(Err(std::io::Error::other(e.to_string())), BODY_IDLE)
                        .await;
                    break transfer.done(Err((e.kind(), e.to_string())));
                }
            };
        }
    });
    let mut file_name: String = path
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .collect();
    if file_name.trim_matches('.').is_empty() {
        file_name = "file".into();
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}
