//! Node keys a client signs requests with: one file per node, `<dir>/<node>.key`, holding the
//! key's 64 hex digits (what `plastic node-key new` writes).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use plastic_proto::{NodeKey, NodeName};

/// Keys looked up by node name, read from disk once each.
#[derive(Debug, Default)]
pub struct KeyRing {
    dir: Option<PathBuf>,
    cache: Mutex<HashMap<String, Option<NodeKey>>>,
}

impl KeyRing {
    /// Keys in `dir` (which may not exist: then no request is signed).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        KeyRing {
            dir: Some(dir.into()),
            cache: Mutex::default(),
        }
    }

    pub fn path_for(dir: &Path, node: &NodeName) -> PathBuf {
        dir.join(format!("{node}.key"))
    }

    /// The key for `node`, if there is a key file for it. A key file that cannot be read or is
    /// malformed is an error: sending unsigned instead would fail later and less clearly.
    pub fn get(&self, node: &NodeName) -> Result<Option<NodeKey>, String> {
        let Some(dir) = &self.dir else {
            return Ok(None);
        };
        if let Some(known) = self.cache.lock().unwrap().get(node.as_str()) {
            return Ok(known.clone());
        }
        let path = Self::path_for(dir, node);
        let key = match std::fs::read_to_string(&path) {
            Ok(text) => {
                Some(NodeKey::from_hex(&text).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        self.cache
            .lock()
            .unwrap()
            .insert(node.to_string(), key.clone());
        Ok(key)
    }
}
