//! The node's files: everything lives under one root directory.
//!
//! Paths arrive already validated as [`RelPath`] (no `..`, no absolute paths, no hidden
//! components), so joining them to the root cannot escape it. Uploads are written to a hidden
//! temporary file and renamed over the target only after the whole file's SHA-256 matched, so
//! a failed or abandoned transfer leaves the old file as it was.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plastic_proto::command::ChunkReply;
use plastic_proto::{FileChunk, RelPath};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Where partial uploads live, under the root. Hidden, so no request path can name it.
const PARTIAL_DIR: &str = ".partial";

#[derive(Debug, Error)]
pub enum FileError {
    #[error(
        "chunk at offset {got} of `{path}` is out of order; the node expects offset {expected}"
    )]
    OutOfOrder {
        path: String,
        got: u64,
        expected: u64,
    },
    #[error("sha256 of `{path}` does not match: expected {expected}, received data hashes to {actual}; the old file is unchanged")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("no such file: `{0}`")]
    NotFound(String),
    #[error("`{0}` is a directory")]
    IsDirectory(String),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
}

impl FileError {
    pub fn kind(&self) -> &'static str {
        match self {
            FileError::OutOfOrder { .. } => "OutOfOrder",
            FileError::HashMismatch { .. } => "HashMismatch",
            FileError::NotFound(_) => "FileNotFoundError",
            FileError::IsDirectory(_) => "IsADirectoryError",
            FileError::Io(_) => "OSError",
        }
    }
}

struct Transfer {
    received: u64,
    total: u64,
    /// The whole file's hash as the sender announced it: a resume must be of the same file.
    sha256: Option<String>,
    hasher: Sha256,
    temp: PathBuf,
    touched: std::time::Instant,
}

/// Unfinished uploads kept at once; starting one more abandons the one idle longest, so a
/// sender that vanishes mid-transfer cannot fill the disk with temporary files.
const MAX_TRANSFERS: usize = 8;

pub struct FileStore {
    root: PathBuf,
    transfers: Mutex<HashMap<RelPath, Transfer>>,
}

impl FileStore {
    pub fn open(root: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(root)?;
        let root = root.canonicalize()?;
        // Partial uploads from before a restart cannot be resumed from memory; start clean.
        let _ = fs::remove_dir_all(root.join(PARTIAL_DIR));
        Ok(FileStore {
            root,
            transfers: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path_of(&self, path: &RelPath) -> PathBuf {
        self.root.join(path.as_str())
    }

    /// Applies one chunk. Returns the reply's result: how much of the file has arrived.
    pub fn write_chunk(&self, chunk: &FileChunk) -> Result<ChunkReply, FileError> {
        let mut transfers = self.transfers.lock().unwrap();
        if chunk.resume {
            if let Some(t) = transfers.get_mut(&chunk.filename) {
                if t.total == chunk.total && t.sha256 == chunk.sha256 {
                    t.touched = std::time::Instant::now();
                    return Ok(ChunkReply {
                        filename: chunk.filename.as_str().into(),
                        received: t.received,
                        total: t.total,
                        complete: false,
                        sha256: None,
                    });
                }
            }
            // Nothing to resume: start the transfer, as a first chunk with no bytes would.
        }
        if chunk.offset == 0 {
            // A new transfer of this file replaces any unfinished one.
            if let Some(old) = transfers.remove(&chunk.filename) {
                let _ = fs::remove_file(old.temp);
            }
            if transfers.len() >= MAX_TRANSFERS {
                let idlest = transfers
                    .iter()
                    .min_by_key(|(_, t)| t.touched)
                    .map(|(p, _)| p.clone());
                if let Some(old) = idlest.and_then(|p| transfers.remove(&p)) {
                    let _ = fs::remove_file(old.temp);
                }
            }
            let dir = self.root.join(PARTIAL_DIR);
            fs::create_dir_all(&dir)?;
            // Named by a hash of the path: `a/b` and `a__b` must not share a temporary file.
            let temp = dir
                .join(&plastic_proto::file::sha256_hex(chunk.filename.as_str().as_bytes())[..32]);
            fs::File::create(&temp)?;
            transfers.insert(
                chunk.filename.clone(),
                Transfer {
                    received: 0,
                    total: chunk.total,
                    sha256: chunk.sha256.clone(),
                    hasher: Sha256::new(),
                    temp,
                    touched: std::time::Instant::now(),
                },
            );
        }
        let Some(transfer) = transfers.get_mut(&chunk.filename) else {
            return Err(FileError::OutOfOrder {
                path: chunk.filename.as_str().into(),
                got: chunk.offset,
                expected: 0,
            });
        };
        if chunk.offset != transfer.received || chunk.total != transfer.total {
            return Err(FileError::OutOfOrder {
                path: chunk.filename.as_str().into(),
                got: chunk.offset,
                expected: transfer.received,
            });
        }
        fs::OpenOptions::new()
            .append(true)
            .open(&transfer.temp)?
            .write_all(&chunk.content)?;
        transfer.hasher.update(&chunk.content);
        transfer.touched = std::time::Instant::now();
        transfer.received += chunk.content.len() as u64;
        let received = transfer.received;
        if !chunk.is_last() {
            return Ok(ChunkReply {
                filename: chunk.filename.as_str().into(),
                received,
                total: chunk.total,
                complete: false,
                sha256: None,
            });
        }
        let transfer = transfers.remove(&chunk.filename).expect("present above");
        let actual: String = transfer
            .hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if let Some(expected) = &chunk.sha256 {
            if *expected != actual {
                let _ = fs::remove_file(&transfer.temp);
                return Err(FileError::HashMismatch {
                    path: chunk.filename.as_str().into(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let target = self.path_of(&chunk.filename);
        if target.is_dir() {
            let _ = fs::remove_file(&transfer.temp);
            return Err(FileError::IsDirectory(chunk.filename.as_str().into()));
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::File::open(&transfer.temp)?.sync_all()?;
        fs::rename(&transfer.temp, &target)?;
        Ok(ChunkReply {
            filename: chunk.filename.as_str().into(),
            received,
            total: chunk.total,
            complete: true,
            sha256: Some(actual),
        })
    }

    /// Writes a whole small file atomically (deployed scripts).
    pub fn write_all(&self, path: &RelPath, data: &[u8]) -> Result<(), FileError> {
        let chunk = FileChunk {
            filename: path.clone(),
            content: data.to_vec(),
            offset: 0,
            total: data.len() as u64,
            sha256: None,
            resume: false,
        };
        self.write_chunk(&chunk).map(|_| ())
    }

    /// Every regular file under the root with its size, sorted by path.
    pub fn list(&self) -> Result<Vec<(String, u64)>, FileError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') || name == "__pycache__" {
                    continue;
                }
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.is_file() {
                    let rel = entry
                        .path()
                        .strip_prefix(&self.root)
                        .map(|p| p.to_string_lossy().into_owned());
                    if let Ok(rel) = rel {
                        out.push((rel, meta.len()));
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn remove(&self, path: &RelPath) -> Result<(), FileError> {
        let target = self.path_of(path);
        match fs::symlink_metadata(&target) {
            Err(_) => Err(FileError::NotFound(path.as_str().into())),
            Ok(m) if m.is_dir() => Err(FileError::IsDirectory(path.as_str().into())),
            Ok(_) => Ok(fs::remove_file(target)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plastic_proto::file::chunks;

    fn temp_root(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "plastic-files-{tag}-{}",
            plastic_proto::new_message_id()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn chunked_upload_lands_atomically_and_bad_hash_keeps_old_file() {
        let store = FileStore::open(&temp_root("up")).unwrap();
        let name = RelPath::parse("data/blob.bin").unwrap();
        store.write_all(&name, b"old").unwrap();
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        let msgs = chunks(&name, &data, 16 * 1024);
        // A tampered final chunk: the hash check must keep the old file.
        let mut bad = msgs.clone();
        bad.last_mut().unwrap().sha256 = Some("0".repeat(64));
        for (i, m) in bad.iter().enumerate() {
            let r = store.write_chunk(m);
            if i + 1 == bad.len() {
                assert!(matches!(r, Err(FileError::HashMismatch { .. })));
            } else {
                assert_eq!(
                    fs::read(store.path_of(&name)).unwrap(),
                    b"old",
                    "old file intact mid-transfer"
                );
            }
        }
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), b"old");
        for m in &msgs {
            store.write_chunk(m).unwrap();
        }
        assert_eq!(fs::read(store.path_of(&name)).unwrap(), data);
        assert_eq!(
            store.list().unwrap(),
            vec![("data/blob.bin".to_string(), 70_000)]
        );
    }

    #[test]
    fn out_of_order_chunks_are_refused_with_the_expected_offset() {
        let store = FileStore::open(&temp_root("order")).unwrap();
        let name = RelPath::parse("f.bin").unwrap();
        let msgs = chunks(&name, &[1u8; 10_000], 4096);
        let err = store.write_chunk(&msgs[1]).unwrap_err();
        assert!(err.to_string().contains("expects offset 0"), "{err}");
        store.write_chunk(&msgs[0]).unwrap();
        let err = store.write_chunk(&msgs[2]).unwrap_err();
        assert!(err.to_string().contains("expects offset 4096"), "{err}");
    }

    #[test]
    fn abandoned_uploads_are_bounded() {
        let root = temp_root("abandon");
        let store = FileStore::open(&root).unwrap();
        for i in 0..MAX_TRANSFERS + 3 {
            let name = RelPath::parse(&format!("f{i}.bin")).unwrap();
            let first = chunks(&name, &[7u8; 100], 10).remove(0);
            store.write_chunk(&first).unwrap();
        }
        assert_eq!(store.transfers.lock().unwrap().len(), MAX_TRANSFERS);
        assert_eq!(
            fs::read_dir(root.join(PARTIAL_DIR)).unwrap().count(),
            MAX_TRANSFERS
        );
    }

    #[test]
    fn remove_reports_missing_files() {
        let store = FileStore::open(&temp_root("rm")).unwrap();
        let name = RelPath::parse("x.txt").unwrap();
        assert!(matches!(store.remove(&name), Err(FileError::NotFound(_))));
        store.write_all(&name, b"1").unwrap();
        store.remove(&name).unwrap();
        assert!(store.list().unwrap().is_empty());
    }
}
