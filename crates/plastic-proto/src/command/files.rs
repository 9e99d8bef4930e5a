//! The file family: uploads (`file` messages, whose chunk format lives in [`crate::file`]),
//! downloads (`read file`), `list files`, `remove file`, `make dir` and `remove dir`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuiltIn, Operation, Reply};
use crate::fields::{get_str, get_u64};
use crate::{Capability, FileChunk, ProtoError, RelPath, Request};

/// Every file under the node's root with its size.
#[derive(Debug, Clone, PartialEq)]
pub struct ListFiles;

/// `[[path, size], ...]` sorted by path.
pub type FileList = Vec<(String, u64)>;

#[derive(Debug, Clone, PartialEq)]
pub struct RemoveFile {
    pub filename: RelPath,
}

/// `{"removed": <path>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    pub removed: String,
}

/// The reply to a `file` chunk (and to a resume question): how much of the file the node has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkReply {
    pub filename: String,
    pub received: u64,
    pub total: u64,
    pub complete: bool,
    /// What was written, once `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// One chunk of a download: up to `length` bytes from `offset` (docs/protocol.md, "Downloads").
#[derive(Debug, Clone, PartialEq)]
pub struct ReadFile {
    pub filename: RelPath,
    pub offset: u64,
    pub length: u64,
}

impl ReadFile {
    /// What a `read file` asks for when it does not say.
    pub const DEFAULT_LENGTH: u64 = 16 * 1024;
    /// The most one reply carries: its base64 (4/3 of it) and the envelope fit in the
    /// protocol's 256 KiB payload.
    pub const MAX_LENGTH: u64 = 96 * 1024;
}

/// `{"filename", "offset", "size", "content"}` (base64), plus `sha256` of the whole file when
/// this chunk ends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileData {
    pub filename: String,
    pub offset: u64,
    pub size: u64,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// A directory to create (its parent must exist) or to remove (it must be empty).
#[derive(Debug, Clone, PartialEq)]
pub struct MakeDir {
    pub path: RelPath,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemoveDir {
    pub path: RelPath,
}

/// `{"made": <path>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Made {
    pub made: String,
}

no_kwargs!(ListFiles, "list files", Capability::File, FileList);

impl BuiltIn for ReadFile {
    const NAME: &'static str = "read file";
    const CAPABILITY: Capability = Capability::File;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        let filename = get_str(kwargs, "filename")?.ok_or(ProtoError::Missing("filename"))?;
        let length = get_u64(kwargs, "length")?.unwrap_or(Self::DEFAULT_LENGTH);
        if length == 0 || length > Self::MAX_LENGTH {
            return Err(ProtoError::Invalid {
                field: "length",
                reason: format!("{length} is not from 1 to {}", Self::MAX_LENGTH),
            });
        }
        Ok(ReadFile {
            filename: RelPath::parse(filename)?,
            offset: get_u64(kwargs, "offset")?.unwrap_or(0),
            length,
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        crate::fields::object([
            ("filename", self.filename.as_str().into()),
            ("offset", self.offset.into()),
            ("length", self.length.into()),
        ])
    }
}

impl Reply for ReadFile {
    type Output = FileData;
}

fn parse_path(kwargs: &Map<String, Value>) -> Result<RelPath, ProtoError> {
    RelPath::parse(get_str(kwargs, "path")?.ok_or(ProtoError::Missing("path"))?)
}

impl BuiltIn for MakeDir {
    const NAME: &'static str = "make dir";
    const CAPABILITY: Capability = Capability::File;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(MakeDir {
            path: parse_path(kwargs)?,
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        crate::fields::object([("path", self.path.as_str().into())])
    }
}

impl Reply for MakeDir {
    type Output = Made;
}

impl BuiltIn for RemoveDir {
    const NAME: &'static str = "remove dir";
    const CAPABILITY: Capability = Capability::File;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(RemoveDir {
            path: parse_path(kwargs)?,
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        crate::fields::object([("path", self.path.as_str().into())])
    }
}

impl Reply for RemoveDir {
    type Output = Removed;
}

impl BuiltIn for RemoveFile {
    const NAME: &'static str = "remove file";
    const CAPABILITY: Capability = Capability::File;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        let filename = get_str(kwargs, "filename")?.ok_or(ProtoError::Missing("filename"))?;
        Ok(RemoveFile {
            filename: RelPath::parse(filename)?,
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        crate::fields::object([("filename", self.filename.as_str().into())])
    }
}

impl Reply for RemoveFile {
    type Output = Removed;
}

impl Operation for FileChunk {
    type Output = ChunkReply;
    fn capability(&self) -> Capability {
        Capability::File
    }
    fn to_request(&self) -> Request {
        Request::new(self.to_fields())
    }
}
