//! The file family: uploads (`file` messages, whose chunk format lives in [`crate::file`]),
//! `list files` and `remove file`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuiltIn, Operation, Reply};
use crate::fields::get_str;
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

no_kwargs!(ListFiles, "list files", Capability::File, FileList);

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
