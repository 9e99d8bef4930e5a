//! File uploads (`file` chunks, docs/protocol.md "File uploads" and "Resuming"), used by
//! `plastic cp` and the bench.
//!
//! The protocol is a small state machine, [`Plan`], kept apart from the I/O so every decision
//! is unit-tested without sockets:
//!
//! - ask the node first how much of this file (same size and sha256) it already has, and
//!   continue from there: an upload cut earlier (a dropped link, the sender killed) resumes;
//! - size chunks to the `max_payload` the node announces in its presence (a board with little
//!   memory), halving them when the node still answers `PayloadTooLarge`;
//! - after a chunk that got no reply (timeout, node lost) or was refused as `OutOfOrder` (a
//!   chunk ran twice, the node restarted), ask again where the node stands, a few times;
//! - check the sha256 the node reports for what it wrote against the file's.
//!
//! [`Client::upload`] only turns the plan's steps into requests.

use std::sync::Arc;
use std::time::Duration;

use plastic_proto::command::ChunkReply;
use plastic_proto::file::{sha256_hex, MAX_FILE_SIZE};
use plastic_proto::{FileChunk, NodeName, RelPath, Reply, Request};

use crate::{Client, ClientError};

/// Raw bytes per chunk at most: base64 grows data by 4/3 and a message is at most 256 KiB.
pub const MAX_CHUNK: usize = 128 * 1024;
/// Raw bytes per chunk when neither the caller nor the node says otherwise.
pub const DEFAULT_CHUNK: usize = 16 * 1024;
/// Chunks are not halved below this after `PayloadTooLarge`.
pub const MIN_CHUNK: usize = 256;
/// Bytes of a chunk message that are not content: field names, file name, hash, envelope.
const ENVELOPE_ROOM: u64 = 600;
/// Times an upload asks the node where it stands and carries on after a failed chunk.
const RESUMES: u32 = 5;

/// A file to upload: its path on the node, where its bytes are, their count and sha256
/// (computed once, however many nodes it goes to).
#[derive(Debug, Clone)]
pub struct UploadFile {
    pub path: RelPath,
    pub source: UploadSource,
    pub size: u64,
    pub sha256: String,
}

/// Where an upload's bytes are read from, a chunk at a time.
#[derive(Debug, Clone)]
pub enum UploadSource {
    /// In memory (a file `plastic cp` read, a bench's bytes).
    Memory(bytes::Bytes),
    /// A file on disk (the web side spools an HTTP body there, so a transfer holds one chunk
    /// in memory, not the whole file). Read with positioned reads; never written.
    File(Arc<std::fs::File>),
}

impl UploadFile {
    /// Fails for a file larger than a node accepts ([`MAX_FILE_SIZE`]).
    pub fn new(path: RelPath, data: impl Into<bytes::Bytes>) -> Result<Self, UploadError> {
        let data = data.into();
        if data.len() as u64 > MAX_FILE_SIZE {
            return Err(UploadError::TooLarge {
                size: data.len() as u64,
            });
        }
        let sha256 = sha256_hex(&data);
        Ok(UploadFile {
            path,
            size: data.len() as u64,
            source: UploadSource::Memory(data),
            sha256,
        })
    }

    /// A file already on disk, of `size` bytes hashing to `sha256` (the caller hashed it
    /// while writing it). Fails for a file larger than a node accepts.
    pub fn spooled(
        path: RelPath,
        file: std::fs::File,
        size: u64,
        sha256: String,
    ) -> Result<Self, UploadError> {
        if size > MAX_FILE_SIZE {
            return Err(UploadError::TooLarge { size });
        }
        Ok(UploadFile {
            path,
            source: UploadSource::File(Arc::new(file)),
            size,
            sha256,
        })
    }

    /// The bytes `[offset, offset + len)`.
    async fn read(&self, offset: usize, len: usize) -> std::io::Result<Vec<u8>> {
        match &self.source {
            UploadSource::Memory(data) => Ok(data[offset..offset + len].to_vec()),
            UploadSource::File(file) => {
                let file = Arc::clone(file);
                tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let mut buf = vec![0; len];
                    file.read_exact_at(&mut buf, offset as u64)?;
                    Ok(buf)
                })
                .await
                .map_err(std::io::Error::other)?
            }
        }
    }
}

/// What an upload reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    /// The node said where to continue: `at` bytes of `total` are there. `initial`: the
    /// answer to the first question (an earlier upload was cut at `at`); otherwise after a
    /// chunk that failed.
    Resumed { at: u64, total: u64, initial: bool },
    /// A chunk of `bytes` was written; the node now has `received` of `total`.
    Acked {
        bytes: u64,
        received: u64,
        total: u64,
    },
    /// The node refused a chunk as too large; chunks are now `size` bytes.
    Shrunk { size: usize },
}

/// Called with each [`UploadEvent`] (a progress bar, a log line).
pub type Progress = Arc<dyn Fn(&UploadEvent) + Send + Sync>;

#[derive(Clone)]
pub struct UploadOptions {
    /// Raw bytes per chunk (at most [`MAX_CHUNK`]); `None`: [`DEFAULT_CHUNK`]. Either way no
    /// more than the node's announced `max_payload` allows.
    pub chunk_size: Option<usize>,
    /// How long each chunk waits for its reply.
    pub timeout: Duration,
    /// Time to live stamped on each chunk, in seconds.
    pub ttl: Option<f64>,
    pub progress: Option<Progress>,
}

impl UploadOptions {
    pub fn new(timeout: Duration) -> Self {
        UploadOptions {
            chunk_size: None,
            timeout,
            ttl: None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for UploadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadOptions")
            .field("chunk_size", &self.chunk_size)
            .field("timeout", &self.timeout)
            .field("ttl", &self.ttl)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// A finished, verified upload.
#[derive(Debug, Clone)]
pub struct Uploaded {
    /// The node's reply to the last chunk, as it came.
    pub reply: Reply,
    /// The same, read: `complete`, and the `sha256` of what was written (equal to the file's).
    pub result: ChunkReply,
    /// Where the upload started (non-zero when an earlier one was resumed).
    pub resumed_at: u64,
    /// The chunk size in use at the end (smaller than at the start after `PayloadTooLarge`).
    pub chunk_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// No reply: timeout, node lost, connection closed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node refused (`BadPath`, `HashMismatch`, `Forbidden` from the hub...): its reply.
    #[error("{}", refusal(.0))]
    Refused(Box<Reply>),
    /// The node's reply does not have the documented shape.
    #[error("the node's reply to the last chunk is not what docs/protocol.md says: {0}")]
    BadReply(String),
    /// The node reported a different sha256 (or none) for what it wrote.
    #[error("the node reports sha256 {} for what it wrote, the file's is {expected}", .got.as_deref().unwrap_or("(none)"))]
    Unverified {
        expected: String,
        got: Option<String>,
    },
    #[error("the file is {size} bytes; nodes accept files up to {MAX_FILE_SIZE} bytes")]
    TooLarge { size: u64 },
    /// Reading the file's bytes here failed (a spooled file).
    #[error("reading the file to send: {0}")]
    Local(std::io::Error),
}

fn refusal(reply: &Reply) -> String {
    match &reply.error {
        Some(e) => format!("{}: {}", e.kind, e.message),
        None => "error reply without details".into(),
    }
}

impl UploadError {
    /// A short error kind, as replies carry.
    pub fn kind(&self) -> &str {
        match self {
            UploadError::Client(ClientError::Timeout { .. }) => "Timeout",
            UploadError::Client(ClientError::NodeLost { .. }) => "NodeLost",
            UploadError::Client(_) => "ClientError",
            UploadError::Refused(r) => r.error.as_ref().map_or("RemoteError", |e| &e.kind),
            UploadError::BadReply(_) => "ProtocolError",
            UploadError::Unverified { .. } => "HashMismatch",
            UploadError::TooLarge { .. } => "FileTooLarge",
            UploadError::Local(_) => "OSError",
        }
    }
}

/// The chunk size to start with: what the caller asked for (or [`DEFAULT_CHUNK`]), but no
/// more than fits the node's announced `max_payload` once base64 (4/3) and the envelope are
/// counted.
pub fn chunk_size_for(asked: Option<usize>, max_payload: Option<u64>) -> usize {
    let asked = asked.map(|a| a.clamp(1, MAX_CHUNK));
    let fit = max_payload.map(|max| {
        (max.saturating_sub(ENVELOPE_ROOM) as usize * 3 / 4).clamp(MIN_CHUNK, MAX_CHUNK)
    });
    match (asked, fit) {
        (Some(asked), Some(fit)) => asked.min(fit),
        (Some(asked), None) => asked,
        (None, Some(fit)) => fit.min(DEFAULT_CHUNK),
        (None, None) => DEFAULT_CHUNK,
    }
}

/// The next request an upload sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The resume question: how much of this file does the node have?
    Ask,
    /// The chunk `data[offset..offset + len]`.
    Send { offset: usize, len: usize },
}

/// What to do after an answer.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Go on with [`Plan::step`], after reporting these.
    Next(Vec<UploadEvent>),
    Done(Box<Result<Uploaded, UploadError>>),
}

#[derive(Debug)]
enum Phase {
    /// The first question, before any chunk.
    AskFirst,
    /// Asking again after this chunk outcome; it is the upload's outcome if the question
    /// fails too.
    AskAgain(Box<Result<Reply, ClientError>>),
    Send,
}

/// An upload's decisions, without I/O: feed it each request's outcome.
#[derive(Debug)]
pub(crate) struct Plan {
    total: usize,
    sha256: String,
    offset: usize,
    size: usize,
    resumes: u32,
    resumed_at: u64,
    phase: Phase,
}

impl Plan {
    pub(crate) fn new(total: usize, sha256: String, size: usize) -> Self {
        // An empty file is one empty chunk; there is nothing to resume.
        let phase = if total == 0 {
            Phase::Send
        } else {
            Phase::AskFirst
        };
        Plan {
            total,
            sha256,
            offset: 0,
            size: size.max(1),
            resumes: 0,
            resumed_at: 0,
            phase,
        }
    }

    pub(crate) fn step(&self) -> Step {
        match self.phase {
            Phase::AskFirst | Phase::AskAgain(_) => Step::Ask,
            Phase::Send => Step::Send {
                offset: self.offset,
                len: (self.total - self.offset).min(self.size),
            },
        }
    }

    /// The outcome of the request [`Plan::step`] asked for.
    pub(crate) fn handle(&mut self, outcome: Result<Reply, ClientError>) -> Flow {
        match std::mem::replace(&mut self.phase, Phase::Send) {
            Phase::AskFirst => {
                // A node that cannot say (an error, no reply) gets the whole file.
                let at = received(&outcome).unwrap_or(0).min(self.total as u64);
                self.offset = at as usize;
                self.resumed_at = at;
                let events = if at > 0 {
                    vec![UploadEvent::Resumed {
                        at,
                        total: self.total as u64,
                        initial: true,
                    }]
                } else {
                    vec![]
                };
                Flow::Next(events)
            }
            Phase::AskAgain(failed) => match received(&outcome) {
                Some(at) if at <= self.total as u64 => {
                    self.offset = at as usize;
                    Flow::Next(vec![UploadEvent::Resumed {
                        at,
                        total: self.total as u64,
                        initial: false,
                    }])
                }
                _ => Flow::Done(Box::new(Err(failure(*failed)))),
            },
            Phase::Send => self.after_chunk(outcome),
        }
    }

    fn after_chunk(&mut self, outcome: Result<Reply, ClientError>) -> Flow {
        let len = (self.total - self.offset).min(self.size);
        let kind = match &outcome {
            Ok(r) if r.ok => None,
            Ok(r) => r.error.as_ref().map(|e| e.kind.as_str()),
            Err(_) => None,
        };
        match outcome {
            Ok(r) if r.ok && self.offset + len >= self.total => {
                Flow::Done(Box::new(self.verify(r)))
            }
            Ok(r) if r.ok => {
                self.offset += len;
                Flow::Next(vec![UploadEvent::Acked {
                    bytes: len as u64,
                    received: self.offset as u64,
                    total: self.total as u64,
                }])
            }
            // A board short of memory: the same offset again, in smaller pieces.
            Ok(_) if kind == Some("PayloadTooLarge") && self.size > MIN_CHUNK => {
                self.size = (self.size / 2).max(MIN_CHUNK);
                Flow::Next(vec![UploadEvent::Shrunk { size: self.size }])
            }
            // The node expected another offset (a chunk ran twice, the node restarted), or no
            // answer came: ask where it stands and go on from there.
            Ok(r) if kind == Some("OutOfOrder") && self.resumes < RESUMES => self.ask_again(Ok(r)),
            Err(e @ (ClientError::Timeout { .. } | ClientError::NodeLost { .. }))
                if self.resumes < RESUMES =>
            {
                self.ask_again(Err(e))
            }
            other => Flow::Done(Box::new(Err(failure(other)))),
        }
    }

    fn ask_again(&mut self, failed: Result<Reply, ClientError>) -> Flow {
        self.resumes += 1;
        self.phase = Phase::AskAgain(Box::new(failed));
        Flow::Next(vec![])
    }

    /// The last chunk's reply must say the file is complete, with the file's sha256.
    fn verify(&self, reply: Reply) -> Result<Uploaded, UploadError> {
        let result: ChunkReply = reply
            .decode()
            .map_err(|e| UploadError::BadReply(e.to_string()))?;
        if !result.complete {
            return Err(UploadError::BadReply(format!(
                "the last chunk was written but the node has {} of {} bytes",
                result.received, result.total
            )));
        }
        if result.sha256.as_deref() != Some(self.sha256.as_str()) {
            return Err(UploadError::Unverified {
                expected: self.sha256.clone(),
                got: result.sha256,
            });
        }
        Ok(Uploaded {
            reply,
            result,
            resumed_at: self.resumed_at,
            chunk_size: self.size,
        })
    }
}

/// What a resume question's answer says the node has.
fn received(outcome: &Result<Reply, ClientError>) -> Option<u64> {
    match outcome {
        Ok(r) => r.decode::<ChunkReply>().ok().map(|c| c.received),
        Err(_) => None,
    }
}

fn failure(outcome: Result<Reply, ClientError>) -> UploadError {
    match outcome {
        Ok(reply) => UploadError::Refused(Box::new(reply)),
        Err(e) => UploadError::Client(e),
    }
}

impl Client {
    /// Uploads a file to one node, in chunks, resuming where an earlier upload stopped, and
    /// checks the sha256 the node reports (see the module documentation for the protocol).
    /// Each chunk is a [`Client::request`] with `options.timeout`.
    pub async fn upload(
        &self,
        target: &NodeName,
        file: &UploadFile,
        options: &UploadOptions,
    ) -> Result<Uploaded, UploadError> {
        let max_payload = self
            .presence_of(target.as_str())
            .and_then(|p| p.max_payload);
        let size = chunk_size_for(options.chunk_size, max_payload);
        let mut plan = Plan::new(file.size as usize, file.sha256.clone(), size);
        loop {
            let request = match plan.step() {
                Step::Ask => {
                    let q = FileChunk::resume_question(&file.path, file.size, &file.sha256);
                    Request::new(q.to_fields())
                }
                Step::Send { offset, len } => {
                    let content = file.read(offset, len).await.map_err(UploadError::Local)?;
                    let chunk = FileChunk {
                        filename: file.path.clone(),
                        content,
                        offset: offset as u64,
                        total: file.size,
                        sha256: Some(file.sha256.clone()),
                        resume: false,
                    };
                    let mut request = Request::new(chunk.to_fields());
                    if let Some(ttl) = options.ttl {
                        request.set_ttl(ttl);
                    }
                    request
                }
            };
            let outcome = self.request(target, request, options.timeout).await;
            match plan.handle(outcome) {
                Flow::Next(events) => {
                    for event in events {
                        tracing::debug!(node = %target, ?event, "upload");
                        if let Some(progress) = &options.progress {
                            progress(&event);
                        }
                    }
                }
                Flow::Done(result) => return *result,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plastic_proto::ErrorInfo;
    use serde_json::json;

    const SHA: &str = "ab";

    fn answer(received: u64, total: u64) -> Result<Reply, ClientError> {
        Ok(Reply::ok(
            "c",
            json!({"filename": "f", "received": received, "total": total, "complete": false}),
        ))
    }

    fn done(total: u64, sha: &str) -> Result<Reply, ClientError> {
        Ok(Reply::ok(
            "c",
            json!({"filename": "f", "received": total, "total": total, "complete": true, "sha256": sha}),
        ))
    }

    fn refused(kind: &str) -> Result<Reply, ClientError> {
        Ok(Reply::err("c", ErrorInfo::new(kind, "no")))
    }

    fn timeout() -> Result<Reply, ClientError> {
        Err(ClientError::Timeout {
            node: "n".into(),
            seconds: 1.0,
        })
    }

    fn next(flow: Flow) -> Vec<UploadEvent> {
        match flow {
            Flow::Next(events) => events,
            Flow::Done(r) => panic!("ended early: {r:?}"),
        }
    }

    fn end(flow: Flow) -> Result<Uploaded, UploadError> {
        match flow {
            Flow::Done(r) => *r,
            Flow::Next(e) => panic!("not done: {e:?}"),
        }
    }

    #[test]
    fn chunk_size_fits_the_nodes_max_payload() {
        for (asked, max_payload, size) in [
            (None, None, DEFAULT_CHUNK),
            (Some(1000), None, 1000),
            (Some(1_000_000), None, MAX_CHUNK),
            (Some(0), None, 1),
            // (6000 - 600) * 3 / 4 = 4050
            (None, Some(6000), 4050),
            (Some(1000), Some(6000), 1000),
            (Some(8000), Some(6000), 4050),
            (None, Some(1_000_000), DEFAULT_CHUNK),
            (None, Some(100), MIN_CHUNK),
        ] {
            assert_eq!(
                chunk_size_for(asked, max_payload),
                size,
                "{asked:?} {max_payload:?}"
            );
        }
    }

    #[test]
    fn a_fresh_upload_asks_first_then_sends_every_chunk() {
        let mut plan = Plan::new(2500, SHA.into(), 1000);
        assert_eq!(plan.step(), Step::Ask);
        assert_eq!(next(plan.handle(answer(0, 2500))), vec![]);
        let mut sent = Vec::new();
        loop {
            let Step::Send { offset, len } = plan.step() else {
                panic!()
            };
            sent.push((offset, len));
            if offset + len == 2500 {
                let up = end(plan.handle(done(2500, SHA))).unwrap();
                assert_eq!(up.resumed_at, 0);
                assert_eq!(up.result.sha256.as_deref(), Some(SHA));
                break;
            }
            let events = next(plan.handle(answer((offset + len) as u64, 2500)));
            assert_eq!(
                events,
                vec![UploadEvent::Acked {
                    bytes: len as u64,
                    received: (offset + len) as u64,
                    total: 2500
                }]
            );
        }
        assert_eq!(sent, vec![(0, 1000), (1000, 1000), (2000, 500)]);
    }

    #[test]
    fn resume_decisions_on_the_first_question() {
        // (answer to the question, where the upload continues, reported)
        let rows: Vec<(Result<Reply, ClientError>, usize, bool)> = vec![
            (answer(1200, 3000), 1200, true),
            (answer(0, 3000), 0, false),
            // More than the file: clipped; the last chunk then settles it.
            (answer(5000, 3000), 3000, true),
            // Errors and silence: start afresh.
            (refused("UnknownType"), 0, false),
            (timeout(), 0, false),
            (Ok(Reply::ok("c", json!("odd"))), 0, false),
        ];
        for (reply, at, reported) in rows {
            let mut plan = Plan::new(3000, SHA.into(), 1000);
            let events = next(plan.handle(reply));
            assert_eq!(!events.is_empty(), reported, "{at}");
            assert!(matches!(plan.step(), Step::Send { offset, .. } if offset == at));
        }
    }

    #[test]
    fn an_empty_file_is_one_empty_chunk_without_a_question() {
        let mut plan = Plan::new(0, SHA.into(), 1000);
        assert_eq!(plan.step(), Step::Send { offset: 0, len: 0 });
        assert!(end(plan.handle(done(0, SHA))).is_ok());
    }

    #[test]
    fn payload_too_large_halves_the_chunk_down_to_the_minimum() {
        let mut plan = Plan::new(10_000, SHA.into(), 1024);
        next(plan.handle(answer(0, 10_000)));
        assert_eq!(
            next(plan.handle(refused("PayloadTooLarge"))),
            vec![UploadEvent::Shrunk { size: 512 }]
        );
        assert_eq!(
            plan.step(),
            Step::Send {
                offset: 0,
                len: 512
            }
        );
        next(plan.handle(refused("PayloadTooLarge")));
        assert_eq!(
            plan.step(),
            Step::Send {
                offset: 0,
                len: 256
            }
        );
        let err = end(plan.handle(refused("PayloadTooLarge"))).unwrap_err();
        assert_eq!(err.kind(), "PayloadTooLarge");
    }

    #[test]
    fn a_failed_chunk_asks_again_and_continues_where_the_node_stands() {
        for failed in [timeout(), refused("OutOfOrder")] {
            let mut plan = Plan::new(3000, SHA.into(), 1000);
            next(plan.handle(answer(0, 3000)));
            next(plan.handle(answer(1000, 3000)));
            assert_eq!(
                plan.step(),
                Step::Send {
                    offset: 1000,
                    len: 1000
                }
            );
            next(plan.handle(failed));
            assert_eq!(plan.step(), Step::Ask);
            // The chunk did arrive after all (its reply was lost).
            assert_eq!(
                next(plan.handle(answer(2000, 3000))),
                vec![UploadEvent::Resumed {
                    at: 2000,
                    total: 3000,
                    initial: false
                }]
            );
            assert_eq!(
                plan.step(),
                Step::Send {
                    offset: 2000,
                    len: 1000
                }
            );
        }
    }

    #[test]
    fn when_asking_again_fails_the_chunks_failure_is_the_outcome() {
        let mut plan = Plan::new(3000, SHA.into(), 1000);
        next(plan.handle(answer(0, 3000)));
        next(plan.handle(refused("OutOfOrder")));
        let err = end(plan.handle(timeout())).unwrap_err();
        assert_eq!(err.kind(), "OutOfOrder");
        // An answer beyond the file is no place to continue either.
        let mut plan = Plan::new(3000, SHA.into(), 1000);
        next(plan.handle(answer(0, 3000)));
        next(plan.handle(timeout()));
        let err = end(plan.handle(answer(4000, 3000))).unwrap_err();
        assert_eq!(err.kind(), "Timeout");
    }

    #[test]
    fn gives_up_after_a_few_resumes() {
        let mut plan = Plan::new(3000, SHA.into(), 1000);
        next(plan.handle(answer(0, 3000)));
        for _ in 0..RESUMES {
            next(plan.handle(timeout()));
            next(plan.handle(answer(0, 3000)));
        }
        let err = end(plan.handle(timeout())).unwrap_err();
        assert!(matches!(
            err,
            UploadError::Client(ClientError::Timeout { .. })
        ));
    }

    #[test]
    fn other_refusals_end_the_upload_with_the_nodes_reply() {
        for kind in ["BadPath", "HashMismatch", "Forbidden"] {
            let mut plan = Plan::new(3000, SHA.into(), 1000);
            next(plan.handle(answer(0, 3000)));
            let err = end(plan.handle(refused(kind))).unwrap_err();
            assert_eq!(err.kind(), kind);
            assert!(matches!(err, UploadError::Refused(_)));
        }
        let mut plan = Plan::new(3000, SHA.into(), 1000);
        next(plan.handle(answer(0, 3000)));
        let closed = end(plan.handle(Err(ClientError::Closed))).unwrap_err();
        assert_eq!(closed.kind(), "ClientError");
    }

    #[test]
    fn the_last_reply_must_be_complete_with_the_files_sha256() {
        let last = |reply| {
            let mut plan = Plan::new(100, SHA.into(), 1000);
            next(plan.handle(answer(0, 100)));
            end(plan.handle(reply))
        };
        assert!(last(done(100, SHA)).is_ok());
        assert!(matches!(
            last(done(100, "cd")),
            Err(UploadError::Unverified { got: Some(g), .. }) if g == "cd"
        ));
        let no_sha = Ok(Reply::ok(
            "c",
            json!({"filename": "f", "received": 100, "total": 100, "complete": true}),
        ));
        assert!(matches!(
            last(no_sha),
            Err(UploadError::Unverified { got: None, .. })
        ));
        assert!(matches!(
            last(answer(50, 100)),
            Err(UploadError::BadReply(_))
        ));
        assert!(matches!(
            last(Ok(Reply::ok("c", json!(5)))),
            Err(UploadError::BadReply(_))
        ));
    }

    #[test]
    fn files_larger_than_a_node_accepts_are_refused_up_front() {
        let path = RelPath::parse("big.bin").unwrap();
        let big = vec![0u8; MAX_FILE_SIZE as usize + 1];
        assert_eq!(
            UploadFile::new(path.clone(), big).unwrap_err().kind(),
            "FileTooLarge"
        );
        let ok = UploadFile::new(path, b"abc".to_vec()).unwrap();
        assert_eq!(ok.sha256, sha256_hex(b"abc"));
    }
}
