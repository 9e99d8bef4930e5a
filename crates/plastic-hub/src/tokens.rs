//! API tokens for scripts (`plastic token new alice --expires 30d`): a token acts as its hub
//! user over HTTP (`Authorization: Bearer TOKEN`), with that user's role, capabilities and node
//! patterns.
//!
//! A token is `plt_<id>_<secret>`: the id names it (to list and revoke), the secret is 32
//! random bytes. The tokens file (`tokens.toml`, beside the users file, mode 0600) keeps only
//! the SHA-256 of each token: a copy of the file lets nobody in. SHA-256 rather than argon2
//! because a 256-bit random secret cannot be guessed, so slow hashing would only slow every
//! API call down.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::users::{write_private, UsersError};

/// One token, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// The hub user it acts as.
    pub user: String,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Seconds since the Unix epoch; none: until revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// The tokens file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub tokens: BTreeMap<String, Token>,
}

/// Why a presented token is not accepted (the API says only "invalid token" either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    Malformed,
    Unknown,
    Expired,
}

impl Tokens {
    pub fn load_or_default(path: &Path) -> Result<Self, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| UsersError::Parse {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tokens::default()),
            Err(source) => Err(UsersError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let text = toml::to_string_pretty(self).map_err(|e| UsersError::Parse {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_private(path, text.as_bytes()).map_err(|source| UsersError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    /// Makes a token for `user`; returns its id and the token itself (shown once, never kept).
    pub fn create(&mut self, user: &str, now: u64, expires: Option<u64>) -> (String, String) {
        let id = loop {
            let id = hex(&rand::random::<[u8; 4]>());
            if !self.tokens.contains_key(&id) {
                break id;
            }
        };
        let secret =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let token = format!("plt_{id}_{secret}");
        self.tokens.insert(
            id.clone(),
            Token {
                user: user.to_owned(),
                sha256: hex(&Sha256::digest(token.as_bytes())),
                created: now,
                expires,
            },
        );
        (id, token)
    }

    /// Removes a token; false if there was none with that id.
    pub fn revoke(&mut self, id: &str) -> bool {
        self.tokens.remove(id).is_some()
    }

    /// The user a presented token acts as.
    pub fn verify(&self, presented: &str, now: u64) -> Result<&str, TokenRefusal> {
        let rest = presented
            .strip_prefix("plt_")
            .ok_or(TokenRefusal::Malformed)?;
        let (id, _) = rest.split_once('_').ok_or(TokenRefusal::Malformed)?;
        let kept = self.tokens.get(id).ok_or(TokenRefusal::Unknown)?;
        let digest = hex(&Sha256::digest(presented.as_bytes()));
        if !constant_time_eq(digest.as_bytes(), kept.sha256.as_bytes()) {
            return Err(TokenRefusal::Unknown);
        }
        if kept.expires.is_some_and(|e| now >= e) {
            return Err(TokenRefusal::Expired);
        }
        Ok(&kept.user)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_expire_revoke() {
        let mut t = Tokens::default();
        let (id, token) = t.create("alice", 100, Some(200));
        assert!(token.starts_with(&format!("plt_{id}_")));
        assert_eq!(t.verify(&token, 150), Ok("alice"));
        assert_eq!(t.verify(&token, 200), Err(TokenRefusal::Expired));
        let mut wrong = token.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_ne!(t.verify(&wrong, 150), Ok("alice"));
        assert_eq!(t.verify("Bearer", 150), Err(TokenRefusal::Malformed));
        assert!(
            !toml::to_string(&t).unwrap().contains(&token[12..]),
            "only a hash is kept"
        );
        assert!(t.revoke(&id));
        assert_eq!(t.verify(&token, 150), Err(TokenRefusal::Unknown));
        assert!(!t.revoke(&id));
    }

    #[test]
    fn saved_and_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let mut t = Tokens::default();
        let (_, token) = t.create("bob", 1, None);
        t.save(&path).unwrap();
        let back = Tokens::load_or_default(&path).unwrap();
        assert_eq!(back.verify(&token, 10), Ok("bob"));
        assert!(Tokens::load_or_default(&dir.path().join("none.toml"))
            .unwrap()
            .tokens
            .is_empty());
    }
}
