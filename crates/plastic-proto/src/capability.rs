//! What a request may ask a node to do: the unit of the hub's access rules.
//!
//! Every operation in [`crate::command`] says which capability it needs, so the hub, the CLI
//! (`plastic user add --allow`) and the docs agree on one table.

use serde::{Deserialize, Serialize};

/// `deploy` covers `script` and `stop`; `file` covers uploads, `list files` and `remove file`;
/// `command` the other built-in commands (`ping`, `info`, `reset`) and command names this
/// version does not know (the node refuses those, but only a holder of `command` learns so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Capability {
    #[serde(rename = "eval")]
    Eval,
    #[serde(rename = "exec")]
    Exec,
    #[serde(rename = "deploy")]
    Deploy,
    #[serde(rename = "file")]
    File,
    #[serde(rename = "call")]
    Call,
    #[serde(rename = "gpio.read")]
    GpioRead,
    #[serde(rename = "gpio.write")]
    GpioWrite,
    #[serde(rename = "command")]
    Command,
}

impl Capability {
    pub const ALL: [Capability; 8] = [
        Capability::Eval,
        Capability::Exec,
        Capability::Deploy,
        Capability::File,
        Capability::Call,
        Capability::GpioRead,
        Capability::GpioWrite,
        Capability::Command,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Eval => "eval",
            Capability::Exec => "exec",
            Capability::Deploy => "deploy",
            Capability::File => "file",
            Capability::Call => "call",
            Capability::GpioRead => "gpio.read",
            Capability::GpioWrite => "gpio.write",
            Capability::Command => "command",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Every capability's name, comma separated, for error messages and help texts.
    pub fn names() -> String {
        Capability::ALL.map(Capability::as_str).join(", ")
    }
}

impl std::fmt::Display for Capability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A capability name that is not one of [`Capability::ALL`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown capability `{0}` (known: {known})", known = Capability::names())]
pub struct UnknownCapability(pub String);

impl std::str::FromStr for Capability {
    type Err = UnknownCapability;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Capability::parse(s).ok_or_else(|| UnknownCapability(s.to_owned()))
    }
}
