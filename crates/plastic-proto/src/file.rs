//! File uploads: safe relative paths and chunks.
//!
//! A node keeps its files under one root directory. Every path that arrives over the network is
//! checked here, before any file system call, so `../../etc/passwd`, absolute paths and hidden
//! files never reach the node's I/O layer.

use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::fields::{get_str, get_u64};
use crate::ProtoError;

/// The largest file a node accepts, over all its chunks.
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;
const MAX_PATH_LEN: usize = 255;
const MAX_COMPONENT_LEN: usize = 64;

/// A relative path of `/`-separated components of `A-Za-z0-9_.-`, none empty, none starting
/// with a dot (which rules out `.`, `..` and the node's own hidden work files).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub fn parse(path: &str) -> Result<Self, ProtoError> {
        let bad = |reason| {
            Err(ProtoError::BadPath {
                path: path.chars().take(100).collect(),
                reason,
            })
        };
        if path.is_empty() {
            return bad("a path cannot be empty");
        }
        if path.len() > MAX_PATH_LEN {
            return bad("a path has at most 255 characters");
        }
        if path.starts_with('/') {
            return bad("absolute paths are not allowed; paths are relative to the node's root");
        }
        for component in path.split('/') {
            if component.is_empty() {
                return bad("empty path components (`//` or a trailing `/`) are not allowed");
            }
            if component.starts_with('.') {
                return bad("components may not start with `.` (no `..`, no hidden files)");
            }
            if component.len() > MAX_COMPONENT_LEN {
                return bad("a path component has at most 64 characters");
            }
            if !component
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
            {
                return bad("only A-Z, a-z, 0-9, `_`, `.` and `-` are allowed in components");
            }
        }
        Ok(RelPath(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Python module name of a `.py` file at the root (`functions.py` gives `functions`).
    pub fn module_name(&self) -> Option<&str> {
        let stem = self.0.strip_suffix(".py")?;
        (!stem.contains('/') && !stem.contains('.')).then_some(stem)
    }
}

/// One piece of a file upload. A small file is one chunk with `offset` 0.
#[derive(Debug, Clone, PartialEq)]
pub struct FileChunk {
    pub filename: RelPath,
    pub content: Vec<u8>,
    pub offset: u64,
    /// The whole file's size in bytes.
    pub total: u64,
    /// Lowercase hex SHA-256 of the whole file; checked before the file replaces the old one.
    pub sha256: Option<String>,
    /// A question, not data: "how much of this file (same size and sha256) do you have?" The
    /// node answers with `received` and the sender continues from there.
    pub resume: bool,
}

impl FileChunk {
    pub const TYPE: &'static str = "file";

    pub fn parse(body: &Map<String, Value>) -> Result<Self, ProtoError> {
        let filename =
            RelPath::parse(get_str(body, "filename")?.ok_or(ProtoError::Missing("filename"))?)?;
        let text = get_str(body, "content")?.ok_or(ProtoError::Missing("content"))?;
        let content = match get_str(body, "encoding")?.unwrap_or("utf-8") {
            "utf-8" | "utf8" | "text" => text.as_bytes().to_vec(),
            "base64" => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| ProtoError::Invalid {
                    field: "content",
                    reason: format!("not valid base64: {e}"),
                })?,
            other => {
                return Err(ProtoError::Invalid {
                    field: "encoding",
                    reason: format!("`{other}` is not `utf-8` or `base64`"),
                })
            }
        };
        let offset = get_u64(body, "offset")?.unwrap_or(0);
        let total = get_u64(body, "total")?.unwrap_or(content.len() as u64);
        if total > MAX_FILE_SIZE {
            return Err(ProtoError::Invalid {
                field: "total",
                reason: format!(
                    "{total} bytes is more than the {MAX_FILE_SIZE} bytes a node accepts"
                ),
            });
        }
        if offset
            .checked_add(content.len() as u64)
            .is_none_or(|end| end > total)
        {
            return Err(ProtoError::Invalid {
                field: "offset",
                reason: "the chunk runs past `total`".into(),
            });
        }
        let sha256 = get_str(body, "sha256")?.map(str::to_ascii_lowercase);
        if let Some(h) = &sha256 {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ProtoError::Invalid {
                    field: "sha256",
                    reason: "must be 64 hex digits".into(),
                });
            }
        } else if content.len() as u64 != total {
            return Err(ProtoError::Invalid {
                field: "sha256",
                reason: "a file sent in several chunks needs the whole file's sha256".into(),
            });
        }
        let resume = match body.get("resume") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(ProtoError::WrongType {
                    field: "resume",
                    expected: "a boolean",
                })
            }
        };
        if resume && (offset != 0 || !content.is_empty() || sha256.is_none()) {
            return Err(ProtoError::Invalid {
                field: "resume",
                reason: "a resume question has offset 0, empty content and the file's sha256"
                    .into(),
            });
        }
        Ok(FileChunk {
            filename,
            content,
            offset,
            total,
            sha256,
            resume,
        })
    }

    pub fn is_last(&self) -> bool {
        self.offset + self.content.len() as u64 == self.total
    }

    /// The wire form: the content base64-encoded (any bytes travel), `resume` only when set.
    pub fn to_fields(&self) -> Map<String, Value> {
        let mut m = crate::fields::object([
            ("type", Self::TYPE.into()),
            ("filename", self.filename.as_str().into()),
            ("encoding", "base64".into()),
            (
                "content",
                base64::engine::general_purpose::STANDARD
                    .encode(&self.content)
                    .into(),
            ),
            ("offset", self.offset.into()),
            ("total", self.total.into()),
        ]);
        if let Some(sha) = &self.sha256 {
            m.insert("sha256".into(), sha.as_str().into());
        }
        if self.resume {
            m.insert("resume".into(), true.into());
        }
        m
    }

    /// The question that asks a node how much of an upload it already has (`resume`).
    pub fn resume_question(filename: &RelPath, total: u64, sha: &str) -> FileChunk {
        FileChunk {
            filename: filename.clone(),
            content: Vec::new(),
            offset: 0,
            total,
            sha256: Some(sha.to_owned()),
            resume: true,
        }
    }

    /// The chunk of `data[offset..offset + size]` (clipped to the end), `sha` being the whole
    /// file's [`sha256_hex`]. Lets a sender shrink its chunks mid-transfer when a node answers
    /// `PayloadTooLarge`.
    pub fn at(filename: &RelPath, data: &[u8], sha: &str, offset: usize, size: usize) -> FileChunk {
        let start = offset.min(data.len());
        let end = start.saturating_add(size.max(1)).min(data.len());
        FileChunk {
            filename: filename.clone(),
            content: data[start..end].to_vec(),
            offset: start as u64,
            total: data.len() as u64,
            sha256: Some(sha.to_owned()),
            resume: false,
        }
    }
}

/// Lowercase hex SHA-256, the form `sha256` fields carry.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex of a digest, as `sha256` fields carry it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits a file into chunks of at most `chunk_size` raw bytes each.
pub fn chunks(filename: &RelPath, data: &[u8], chunk_size: usize) -> Vec<FileChunk> {
    let sha = sha256_hex(data);
    let chunk_size = chunk_size.max(1);
    let offsets: Vec<usize> = if data.is_empty() {
        vec![0]
    } else {
        (0..data.len()).step_by(chunk_size).collect()
    };
    offsets
        .into_iter()
        .map(|offset| FileChunk::at(filename, data, &sha, offset, chunk_size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuses_escaping_and_hidden_paths() {
        for bad in [
            "../../etc/passwd",
            "/etc/passwd",
            "a/../b",
            ".hidden",
            "a//b",
            "a/",
            "",
            "a\\b",
            "x\0y",
        ] {
            assert_eq!(
                RelPath::parse(bad).unwrap_err().kind(),
                "BadPath",
                "{bad:?}"
            );
        }
        assert_eq!(
            RelPath::parse("lib/functions.py").unwrap().as_str(),
            "lib/functions.py"
        );
        assert_eq!(
            RelPath::parse("functions.py").unwrap().module_name(),
            Some("functions")
        );
        assert_eq!(RelPath::parse("lib/f.py").unwrap().module_name(), None);
    }

    #[test]
    fn chunks_round_trip_through_parse() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let name = RelPath::parse("blob.bin").unwrap();
        let msgs = chunks(&name, &data, 4096);
        assert_eq!(msgs.len(), 3);
        let mut rebuilt = Vec::new();
        for m in &msgs {
            let c = FileChunk::parse(&m.to_fields()).unwrap();
            assert_eq!(&c, m);
            assert_eq!(c.offset as usize, rebuilt.len());
            rebuilt.extend_from_slice(&c.content);
        }
        assert!(msgs[2].is_last());
        assert_eq!(rebuilt, data);
        assert_eq!(Some(sha256_hex(&rebuilt)), msgs[0].sha256);
        let q = FileChunk::resume_question(&name, 10_000, &sha256_hex(&data));
        assert_eq!(FileChunk::parse(&q.to_fields()).unwrap(), q);
    }

    #[test]
    fn refuses_chunks_past_total_and_multi_chunk_without_hash() {
        let m = json!({"filename": "a.txt", "content": "abc", "offset": 2, "total": 4});
        assert!(FileChunk::parse(m.as_object().unwrap()).is_err());
        let m = json!({"filename": "a.txt", "content": "ab", "total": 4});
        assert!(FileChunk::parse(m.as_object().unwrap())
            .unwrap_err()
            .to_string()
            .contains("sha256"));
    }
}
