//! Node and group names: 1 to 64 characters of `A-Za-z0-9_.-`.
//!
//! Names become MQTT topic levels, so `/`, `+` and `#` would let a name address other topics;
//! the allowed set keeps every name a single, literal level.

use std::fmt;

use crate::ProtoError;

pub const MAX_NAME_LEN: usize = 64;

/// Words that cannot be node names because they are topic levels with a meaning of their own.
const RESERVED: &[&str] = &["all", "group", "pool"];

/// Words that cannot name a group or a pool: `<prefix>/group/<g>/in` and
/// `<prefix>/pool/<p>/in` would then also match a node's reading filters such as
/// `<prefix>/+/events/#` (a pool named `events` would show every task to every reader).
const RESERVED_SET_NAMES: &[&str] = &["in", "status", "log", "events"];

/// A group's or a pool's name: a name, and not one of the node topics' own levels.
pub fn validate_set_name(name: &str) -> Result<(), ProtoError> {
    validate_name(name)?;
    if RESERVED_SET_NAMES.contains(&name) {
        return Err(ProtoError::BadName {
            name: name.to_owned(),
            reason: "`in`, `status`, `log` and `events` cannot name a group or a pool",
        });
    }
    Ok(())
}

/// A validated node name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeName(String);

impl NodeName {
    pub fn parse(name: &str) -> Result<Self, ProtoError> {
        validate_name(name)?;
        if RESERVED.contains(&name) {
            return Err(ProtoError::BadName {
                name: name.to_owned(),
                reason: "`all`, `group` and `pool` are reserved topic levels",
            });
        }
        Ok(NodeName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks the character set and length shared by node and group names.
pub fn validate_name(name: &str) -> Result<(), ProtoError> {
    let bad = |reason| {
        Err(ProtoError::BadName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a name needs at least one character");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("a name has at most 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return bad("only A-Z, a-z, 0-9, `_`, `.` and `-` are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in ["pi-1", "esp8266_a1b2c3", "a", "x.y", &"n".repeat(64)] {
            assert_eq!(NodeName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn refuses_topic_metacharacters_and_bad_lengths() {
        for bad in [
            "",
            "a/b",
            "a+",
            "#",
            "sp ace",
            "é",
            &"n".repeat(65),
            "all",
            "group",
        ] {
            let err = NodeName::parse(bad).unwrap_err();
            assert!(
                matches!(err, ProtoError::BadName { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
