//! File downloads (`read file` chunks, docs/protocol.md "Downloads"), used by `plastic cp
//! NODE:PATH FILE` and `plastic fs NODE cat PATH`.
//!
//! [`Assembly`] is the protocol's state, kept apart from the I/O so every check is unit-tested
//! without sockets: it says which chunk to ask for next, checks each reply (the offset asked,
//! no more bytes than asked, some bytes unless the file ends, `sha256` exactly on the chunk
//! that ends the file) and hashes what it was given, so the file assembled is compared with
//! the node's `sha256` of the whole file at the end. A download can resume: the bytes already
//! kept (a `.part` file) seed the hash and the first offset.

use base64::Engine;
use plastic_proto::command::{FileData, ReadFile};
use plastic_proto::{NodeName, Operation, RelPath, Reply};
use sha2::{Digest, Sha256};

use crate::{Client, ClientError};

/// Bytes asked for per chunk when neither the caller nor the node says otherwise.
pub const DEFAULT_READ: u64 = ReadFile::DEFAULT_LENGTH;
/// Chunks are never asked smaller than this.
pub const MIN_READ: u64 = 256;

/// The chunk length to ask for: what the caller wants (or [`DEFAULT_READ`]), at most half the
/// node's announced `max_payload` (a board builds the base64 reply in its small heap), never
/// more than the protocol's [`ReadFile::MAX_LENGTH`].
pub fn read_size_for(asked: Option<u64>, max_payload: Option<u64>) -> u64 {
    let mut size = asked.unwrap_or(DEFAULT_READ);
    if let Some(max) = max_payload {
        size = size.min(max / 2);
    }
    size.clamp(MIN_READ, ReadFile::MAX_LENGTH)
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No reply: timeout, node lost, connection closed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The node refused (`FileNotFoundError`, `BadPath`, `OutOfOrder`, `Forbidden`...).
    #[error("{}", match &.0.error { Some(e) => format!("{}: {}", e.kind, e.message), None => "error reply without details".into() })]
    Refused(Box<Reply>),
    /// The reply does not follow docs/protocol.md.
    #[error("the node's reply to `read file` is not what docs/protocol.md says: {0}")]
    BadReply(String),
    /// What was assembled does not hash to the node's sha256: the file changed while it was
    /// read (or the kept part was of another file).
    #[error("the file's sha256 on the node is {expected}, what was received hashes to {got}: it changed during the download")]
    Mismatch { expected: String, got: String },
    /// Writing the bytes locally failed.
    #[error("{0}")]
    Local(#[from] std::io::Error),
}

impl DownloadError {
    /// A short error kind, as replies carry.
    pub fn kind(&self) -> &str {
        match self {
            DownloadError::Client(ClientError::Timeout { .. }) => "Timeout",
            DownloadError::Client(ClientError::NodeLost { .. }) => "NodeLost",
            DownloadError::Client(_) => "ClientError",
            DownloadError::Refused(r) => r.error.as_ref().map_or("RemoteError", |e| &e.kind),
            DownloadError::BadReply(_) => "ProtocolError",
            DownloadError::Mismatch { .. } => "HashMismatch",
            DownloadError::Local(_) => "OSError",
        }
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq)]
pub struct Downloaded {
    pub size: u64,
    pub sha256: String,
    /// Where it started (non-zero when kept bytes were resumed).
    pub resumed_at: u64,
}

/// What a checked reply gives.
#[derive(Debug, PartialEq)]
pub enum Piece {
    /// These bytes, and more to ask for.
    More(Vec<u8>),
    /// The last bytes; the whole file matched the node's sha256.
    Last(Vec<u8>, Downloaded),
}

/// The state of one download (see the module documentation).
pub struct Assembly {
    path: RelPath,
    offset: u64,
    resumed_at: u64,
    length: u64,
    size: Option<u64>,
    hasher: Sha256,
}

impl Assembly {
    /// A download of `path` that already has `kept` (the start of the file, possibly empty).
    pub fn new(path: RelPath, kept: &[u8], length: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(kept);
        Assembly {
            path,
            offset: kept.len() as u64,
            resumed_at: kept.len() as u64,
            length,
            size: None,
            hasher,
        }
    }

    /// The file's size as the node's last reply gave it (None before the first).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The next request.
    pub fn next(&self) -> ReadFile {
        ReadFile {
            filename: self.path.clone(),
            offset: self.offset,
            length: self.length,
        }
    }

    /// Checks one reply's `result` and takes its bytes.
    pub fn take(&mut self, data: FileData) -> Result<Piece, DownloadError> {
        let bad = |why: String| Err(DownloadError::BadReply(why));
        if data.offset != self.offset || data.filename != self.path.as_str() {
            return bad(format!(
                "asked for `{}` at {}, got `{}` at {}",
                self.path.as_str(),
                self.offset,
                data.filename,
                data.offset
            ));
        }
        if let Some(size) = self.size.filter(|&s| s != data.size) {
            // The file was rewritten while it was read: what came before is of another file.
            return Err(DownloadError::Mismatch {
                expected: format!("a file of {size} bytes"),
                got: format!(
                    "a file of {} bytes (it changed size during the download)",
                    data.size
                ),
            });
        }
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&data.content) {
            Ok(b) => b,
            Err(e) => return bad(format!("content is not base64: {e}")),
        };
        let end = self.offset + bytes.len() as u64;
        if bytes.len() as u64 > self.length || end > data.size {
            return bad(format!(
                "{} bytes at {} (asked for {}, file size {})",
                bytes.len(),
                self.offset,
                self.length,
                data.size
            ));
        }
        if bytes.is_empty() && end < data.size {
            return bad(format!("no bytes at {} of {}", self.offset, data.size));
        }
        if (end == data.size) != data.sha256.is_some() {
            return bad(
                "`sha256` must come with the chunk that ends the file, and only then".into(),
            );
        }
        self.hasher.update(&bytes);
        self.offset = end;
        self.size = Some(data.size);
        let Some(expected) = data.sha256 else {
            return Ok(Piece::More(bytes));
        };
        let got = plastic_proto::file::hex(&self.hasher.clone().finalize());
        if got != expected.to_ascii_lowercase() {
            return Err(DownloadError::Mismatch { expected, got });
        }
        Ok(Piece::Last(
            bytes,
            Downloaded {
                size: end,
                sha256: got,
                resumed_at: self.resumed_at,
            },
        ))
    }
}

impl Client {
    /// Downloads `path` from one node after the `kept` bytes already held, handing each chunk
    /// to `sink` as it arrives, and checks the whole file's sha256 at the end. `length`: bytes
    /// per chunk (None: [`read_size_for`] the node's presence).
    pub async fn download(
        &self,
        target: &NodeName,
        path: &RelPath,
        kept: &[u8],
        length: Option<u64>,
        timeout: std::time::Duration,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<Downloaded, DownloadError> {
        let max_payload = self
            .presence_of(target.as_str())
            .and_then(|p| p.max_payload);
        let mut assembly = Assembly::new(path.clone(), kept, read_size_for(length, max_payload));
        loop {
            match self.download_step(target, &mut assembly, timeout).await? {
                Piece::More(bytes) => sink(&bytes)?,
                Piece::Last(bytes, done) => {
                    sink(&bytes)?;
                    return Ok(done);
                }
            }
        }
    }

    /// One chunk of a download: asks for what `assembly` needs next and checks the reply.
    /// For a caller that hands the bytes on at its own pace (the web side streams them into
    /// an HTTP response); [`Client::download`] is the loop over it.
    pub async fn download_step(
        &self,
        target: &NodeName,
        assembly: &mut Assembly,
        timeout: std::time::Duration,
    ) -> Result<Piece, DownloadError> {
        let request = assembly.next().to_request();
        let reply = self.request(target, request, timeout).await?;
        if reply.error.is_some() || !reply.ok {
            return Err(DownloadError::Refused(Box::new(reply)));
        }
        let data: FileData = reply
            .decode()
            .map_err(|e| DownloadError::BadReply(e.to_string()))?;
        assembly.take(data)
    }
}

impl Client {
    /// Downloads `path` from one node into the local file `dest`, the way `plastic cp` and the
    /// Python package's `View.get` do: into `dest.part` first, resumed from its length when a
    /// cut download left one, started afresh once when that part turns out to be of another
    /// file (its hash differs, or it is longer than the node's file), and renamed over `dest`
    /// only after the node's sha256 matched. A part that is empty or wrong is removed when the
    /// download fails; one cut by a broken link is kept for the next try.
    pub async fn download_to_file(
        &self,
        target: &NodeName,
        path: &RelPath,
        dest: &std::path::Path,
        length: Option<u64>,
        timeout: std::time::Duration,
    ) -> Result<Downloaded, DownloadError> {
        use std::io::Write;
        let mut part_name = dest.as_os_str().to_owned();
        part_name.push(".part");
        let part = std::path::PathBuf::from(part_name);
        // Never through a link: a `.part` planted as a link would have its target read and
        // truncated. Checked before the transfer, not after it.
        for path in [&part, &dest.to_path_buf()] {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_symlink() || meta.is_dir() {
                    return Err(DownloadError::Local(std::io::Error::other(format!(
                        "{} is a {}: not written through",
                        path.display(),
                        if meta.is_dir() {
                            "folder"
                        } else {
                            "symbolic link"
                        }
                    ))));
                }
            }
        }
        let mut kept = std::fs::read(&part).unwrap_or_default();
        loop {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)?;
            if kept.is_empty() {
                file.set_len(0)?;
            }
            let mut sink = |bytes: &[u8]| file.write_all(bytes);
            let outcome = self
                .download(target, path, &kept, length, timeout, &mut sink)
                .await;
            drop(file);
            match outcome {
                Ok(done) => {
                    std::fs::rename(&part, dest)?;
                    return Ok(done);
                }
                Err(e) if !kept.is_empty() && e.means_another_file() => {
                    tracing::info!(%e, "the kept part is not of this file: starting afresh");
                    kept.clear();
                }
                Err(e) => {
                    let empty = std::fs::metadata(&part).is_ok_and(|m| m.len() == 0);
                    if empty || matches!(e, DownloadError::Mismatch { .. }) {
                        let _ = std::fs::remove_file(&part);
                    }
                    return Err(e);
                }
            }
        }
    }
}

impl DownloadError {
    /// What a resumed download gets when its kept bytes are not the start of the node's file.
    fn means_another_file(&self) -> bool {
        match self {
            DownloadError::Mismatch { .. } => true,
            DownloadError::Refused(r) => r.error.as_ref().is_some_and(|e| e.kind == "OutOfOrder"),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plastic_proto::file::sha256_hex;

    fn data(filename: &str, offset: u64, size: u64, bytes: &[u8], sha: Option<String>) -> FileData {
        FileData {
            filename: filename.into(),
            offset,
            size,
            content: base64::engine::general_purpose::STANDARD.encode(bytes),
            sha256: sha,
        }
    }

    #[test]
    fn chunks_assemble_and_the_hash_is_checked() {
        let file: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let sha = sha256_hex(&file);
        let mut a = Assembly::new(RelPath::parse("d/f.bin").unwrap(), &[], 400);
        let mut got = Vec::new();
        for (start, end) in [(0, 400), (400, 800)] {
            assert_eq!(a.next().offset, start);
            match a
                .take(data(
                    "d/f.bin",
                    start,
                    1000,
                    &file[start as usize..end],
                    None,
                ))
                .unwrap()
            {
                Piece::More(b) => got.extend(b),
                other => panic!("{other:?}"),
            }
        }
        match a
            .take(data("d/f.bin", 800, 1000, &file[800..], Some(sha.clone())))
            .unwrap()
        {
            Piece::Last(b, done) => {
                got.extend(b);
                assert_eq!(
                    done,
                    Downloaded {
                        size: 1000,
                        sha256: sha,
                        resumed_at: 0
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got, file);
    }

    #[test]
    fn a_resumed_download_hashes_the_kept_bytes_too() {
        let file = b"hello, world".to_vec();
        let mut a = Assembly::new(RelPath::parse("f").unwrap(), &file[..5], 100);
        assert_eq!(a.next().offset, 5);
        let last = a
            .take(data("f", 5, 12, &file[5..], Some(sha256_hex(&file))))
            .unwrap();
        assert!(matches!(
            last,
            Piece::Last(
                _,
                Downloaded {
                    resumed_at: 5,
                    size: 12,
                    ..
                }
            )
        ));
        // Kept bytes of another file: the hash says so.
        let mut a = Assembly::new(RelPath::parse("f").unwrap(), b"HELLO", 100);
        let wrong = a.take(data("f", 5, 12, &file[5..], Some(sha256_hex(&file))));
        assert!(
            matches!(wrong, Err(DownloadError::Mismatch { .. })),
            "{wrong:?}"
        );
    }

    #[test]
    fn replies_that_break_the_protocol_are_refused() {
        let new = || Assembly::new(RelPath::parse("f").unwrap(), &[], 4);
        let sha = Some(sha256_hex(b"abcdefgh"));
        for (reply, why) in [
            (data("f", 1, 8, b"abcd", None), "another offset"),
            (data("g", 0, 8, b"abcd", None), "another file"),
            (data("f", 0, 8, b"abcde", None), "more than asked"),
            (data("f", 0, 2, b"abcd", None), "past the size"),
            (data("f", 0, 8, b"", None), "no bytes before the end"),
            (
                data("f", 0, 8, b"abcd", sha.clone()),
                "a hash before the end",
            ),
            (data("f", 0, 4, b"abcd", None), "no hash at the end"),
        ] {
            assert!(
                matches!(new().take(reply), Err(DownloadError::BadReply(_))),
                "{why}"
            );
        }
        let mut a = new();
        let mut not_base64 = data("f", 0, 8, b"", None);
        not_base64.content = "%%%".into();
        assert!(matches!(
            a.take(not_base64),
            Err(DownloadError::BadReply(_))
        ));
        // An empty file is one empty chunk with the hash of nothing.
        let mut a = new();
        let empty = a.take(data("f", 0, 0, b"", Some(sha256_hex(b"")))).unwrap();
        assert!(matches!(empty, Piece::Last(b, Downloaded { size: 0, .. }) if b.is_empty()));
    }

    /// A file that grows while it is read is refused at the chunk that says so, before its
    /// bytes are taken: a reader that sized itself from the first chunk never gets a mix.
    #[test]
    fn a_file_that_changes_size_mid_download_is_refused() {
        let mut a = Assembly::new(RelPath::parse("f").unwrap(), &[], 4);
        assert!(matches!(
            a.take(data("f", 0, 8, b"abcd", None)).unwrap(),
            Piece::More(_)
        ));
        assert_eq!(a.size(), Some(8));
        let grown = a.take(data("f", 4, 12, b"efgh", None));
        assert!(
            matches!(grown, Err(DownloadError::Mismatch { .. })),
            "{grown:?}"
        );
    }

    #[test]
    fn read_size_fits_the_node() {
        assert_eq!(read_size_for(None, None), 16 * 1024);
        assert_eq!(read_size_for(None, Some(2048)), 1024);
        assert_eq!(read_size_for(Some(1 << 30), None), ReadFile::MAX_LENGTH);
        assert_eq!(read_size_for(Some(10), Some(100)), MIN_READ);
    }
}
