//! Scripts: `script` deploys and starts one; the `stop` command stops them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuiltIn, Operation, Reply};
use crate::fields::{get_str, object};
use crate::{Capability, ProtoError, Request};

/// Default name of a deployed script when the message gives none.
pub const DEFAULT_SCRIPT_NAME: &str = "main";

/// Saves the source as `<name>.py` under the node root and runs it in the background,
/// replacing a running script of the same name.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub script: String,
    pub name: String,
}

/// `{"name": <name>, "started": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptStarted {
    pub name: String,
    pub started: bool,
}

/// Stops the named script, or every script and the blinker when no name is given.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    pub name: Option<String>,
}

/// `{"stopped": [...], "still_running": [...], "blink_stopped": bool}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StopReply {
    pub stopped: Vec<String>,
    /// Scripts that reached no stop point within the node's wait.
    pub still_running: Vec<String>,
    pub blink_stopped: bool,
}

impl Script {
    pub const TYPE: &'static str = "script";

    pub(crate) fn parse(m: &Map<String, Value>) -> Result<Self, ProtoError> {
        let name = get_str(m, "name")?.unwrap_or(DEFAULT_SCRIPT_NAME);
        crate::name::validate_name(name)?;
        Ok(Script {
            script: get_str(m, "script")?
                .ok_or(ProtoError::Missing("script"))?
                .to_owned(),
            name: name.to_owned(),
        })
    }

    /// A script's default name from its file's path: the file stem, if that is a valid name.
    pub fn name_for_path(path: &std::path::Path) -> String {
        path.file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| crate::name::validate_name(s).is_ok())
            .unwrap_or(DEFAULT_SCRIPT_NAME)
            .to_owned()
    }
}

impl Operation for Script {
    type Output = ScriptStarted;
    fn capability(&self) -> Capability {
        Capability::Deploy
    }
    fn to_request(&self) -> Request {
        Request::new(object([
            ("type", Self::TYPE.into()),
            ("script", self.script.as_str().into()),
            ("name", self.name.as_str().into()),
        ]))
    }
}

impl BuiltIn for Stop {
    const NAME: &'static str = "stop";
    const CAPABILITY: Capability = Capability::Deploy;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(Stop {
            name: get_str(kwargs, "name")?.map(str::to_owned),
        })
    }
    fn kwargs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(n) = &self.name {
            m.insert("name".into(), n.as_str().into());
        }
        m
    }
}

impl Reply for Stop {
    type Output = StopReply;
}

impl StopReply {
    /// One line for people: what stopped, and what did not.
    pub fn describe(&self) -> String {
        let mut text = if self.stopped.is_empty() {
            "no script was running".to_owned()
        } else {
            format!("stopped: {}", self.stopped.join(", "))
        };
        if self.blink_stopped {
            text.push_str("; blink stopped");
        }
        if !self.still_running.is_empty() {
            text.push_str(&format!(
                "; still running (no stop point reached): {}",
                self.still_running.join(", ")
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_come_from_the_file_stem() {
        assert_eq!(
            Script::name_for_path(std::path::Path::new("dir/script_to_deploy.py")),
            "script_to_deploy"
        );
        assert_eq!(
            Script::name_for_path(std::path::Path::new("my script.py")),
            "main"
        );
    }

    #[test]
    fn stop_replies_read_as_sentences() {
        let r = StopReply {
            stopped: vec!["a".into(), "b".into()],
            still_running: vec!["c".into()],
            blink_stopped: true,
        };
        assert_eq!(
            r.describe(),
            "stopped: a, b; blink stopped; still running (no stop point reached): c"
        );
        assert_eq!(StopReply::default().describe(), "no script was running");
    }
}
