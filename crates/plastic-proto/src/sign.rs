//! Signed requests: HMAC-SHA256 with a per-node key over the request's exact bytes.
//!
//! A signed request is an ordinary request whose JSON text ends with one more member,
//! `,"sig":"<64 lowercase hex>"}`. The signature covers the payload without that member. Signing
//! bytes rather than a canonical re-serialisation is what lets a MicroPython board verify with a
//! slice and one HMAC (no JSON canonicalisation, which serde_json and MicroPython's `json` do not
//! agree on). See docs/protocol.md, "Signed requests".

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::Envelope;

/// `,"sig":"` + 64 hex digits + `"}`.
pub const SIG_SUFFIX_LEN: usize = 8 + 64 + 2;

/// How far a signed request's `time_stamp` may be from the node's clock, by default.
pub const DEFAULT_MAX_SKEW: f64 = 120.0;

type HmacSha256 = Hmac<Sha256>;

/// A node's secret: 32 bytes, written as 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKey([u8; 32]);

impl fmt::Debug for NodeKey {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

/// Why a signed request was refused. `kind()` is the error kind a node replies with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignatureError {
    #[error("this node runs only signed requests (a node key is set); sign it with the node's key (plastic node-key)")]
    Unsigned,
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    #[error("{0}")]
    Stale(String),
    #[error("{0}")]
    Replayed(String),
}

impl SignatureError {
    pub fn kind(&self) -> &'static str {
        match self {
            SignatureError::Unsigned => "Unsigned",
            SignatureError::BadSignature(_) => "BadSignature",
            SignatureError::Stale(_) => "Stale",
            SignatureError::Replayed(_) => "Replayed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("a node key is 64 hex digits (32 bytes)")]
pub struct BadKey;

impl NodeKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        NodeKey(key)
    }

    /// Reads 64 hex digits (surrounding whitespace allowed, as in a key file).
    pub fn from_hex(text: &str) -> Result<Self, BadKey> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(BadKey);
        }
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2).ok_or(BadKey)?, 16)
                .map_err(|_| BadKey)?;
        }
        Ok(NodeKey(key))
    }

    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    fn mac(&self, signed: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(signed);
        mac
    }

    /// Signs a request's JSON text (an object with at least one member, as every request is).
    pub fn sign(&self, body: &[u8]) -> Vec<u8> {
        let sig = hex(&self.mac(body).finalize().into_bytes());
        let open = body.strip_suffix(b"}").unwrap_or(body);
        let mut out = Vec::with_capacity(open.len() + SIG_SUFFIX_LEN);
        out.extend_from_slice(open);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(sig.as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }

    /// Checks the signature of a payload as received. Only the bytes are checked here; see
    /// [`check_envelope`] for the receiver and the time stamp.
    pub fn verify(&self, payload: &[u8]) -> Result<(), SignatureError> {
        let (signed_open, sig) = split_signature(payload).ok_or(SignatureError::Unsigned)?;
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(signed_open);
        mac.update(b"}");
        // `verify_slice` compares in constant time.
        mac.verify_slice(&sig).map_err(|_| {
            SignatureError::BadSignature(
                "made with another key, or the request was changed after signing".into(),
            )
        })
    }
}

/// Splits `payload` into the signed bytes (without their closing `}`) and the 32-byte signature,
/// if it ends with a well-formed `sig` member.
fn split_signature(payload: &[u8]) -> Option<(&[u8], [u8; 32])> {
    let cut = payload.len().checked_sub(SIG_SUFFIX_LEN)?;
    let (open, suffix) = payload.split_at(cut);
    let digits = suffix.strip_prefix(b",\"sig\":\"")?.strip_suffix(b"\"}")?;
    let mut sig = [0u8; 32];
    for (i, byte) in sig.iter_mut().enumerate() {
        let pair = &digits[2 * i..2 * i + 2];
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some((open, sig))
}

/// Lowercase hex only: one spelling per signature.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A signed request is for one node: its (signed) `receiver` must be this node.
pub fn check_receiver(envelope: &Envelope, own_name: &str) -> Result<(), SignatureError> {
    if envelope.receiver.as_deref() != Some(own_name) {
        return Err(SignatureError::BadSignature(format!(
            "signed for `{}`, not for this node ({own_name}); signed requests cannot be broadcast",
            envelope.receiver.as_deref().unwrap_or("")
        )));
    }
    Ok(())
}

/// The envelope checks of a verified signed request: it is for this node, and fresh.
///
/// `not_before` is when the node started: a signed request stamped earlier could be a replay
/// of one the node ran before it restarted and forgot.
pub fn check_envelope(
    envelope: &Envelope,
    own_name: &str,
    now: f64,
    not_before: f64,
    max_skew: f64,
) -> Result<(), SignatureError> {
    check_receiver(envelope, own_name)?;
    let Some(ts) = envelope.time_stamp.filter(|t| t.is_finite()) else {
        return Err(SignatureError::Stale(
            "a signed request needs a time_stamp".into(),
        ));
    };
    if (now - ts).abs() > max_skew {
        return Err(SignatureError::Stale(format!(
            "time_stamp is {:.0} s from this node's clock (at most {max_skew:.0} s allowed); check both clocks",
            now - ts
        )));
    }
    if ts < not_before {
        return Err(SignatureError::Stale(format!(
            "stamped {:.3} s before this node started; send it again",
            not_before - ts
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_refuses_any_change() {
        let key = NodeKey::generate();
        let body = br#"{"type":"eval","to_evaluate":"2+3"}"#;
        let signed = key.sign(body);
        assert!(signed.starts_with(br#"{"type":"eval","to_evaluate":"2+3","sig":""#));
        assert_eq!(key.verify(&signed), Ok(()));
        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("2+3", "2+4");
        assert_eq!(
            key.verify(tampered.as_bytes()).unwrap_err().kind(),
            "BadSignature"
        );
        assert_eq!(
            NodeKey::generate().verify(&signed).unwrap_err().kind(),
            "BadSignature"
        );
        assert_eq!(key.verify(body), Err(SignatureError::Unsigned));
        assert_eq!(key.verify(b""), Err(SignatureError::Unsigned));
    }

    #[test]
    fn keys_round_trip_through_hex_and_never_print() {
        let key = NodeKey::generate();
        assert_eq!(
            NodeKey::from_hex(&format!(" {}\n", key.to_hex())),
            Ok(key.clone())
        );
        assert_eq!(format!("{key:?}"), "NodeKey(..)");
        assert_eq!(NodeKey::from_hex("abc"), Err(BadKey));
        assert_eq!(NodeKey::from_hex(&"g".repeat(64)), Err(BadKey));
        assert_eq!(NodeKey::from_hex(&"é".repeat(32)), Err(BadKey));
    }

    #[test]
    fn envelope_must_name_this_node_and_be_fresh() {
        let env = |receiver: &str, ts: f64| Envelope {
            receiver: Some(receiver.into()),
            time_stamp: Some(ts),
            ..Envelope::default()
        };
        let ok = check_envelope(&env("esp-1", 1000.0), "esp-1", 1010.0, 900.0, 120.0);
        assert_eq!(ok, Ok(()));
        let kind = |r: Result<(), SignatureError>| r.unwrap_err().kind();
        assert_eq!(
            kind(check_envelope(
                &env("esp-2", 1000.0),
                "esp-1",
                1000.0,
                900.0,
                120.0
            )),
            "BadSignature"
        );
        assert_eq!(
            kind(check_envelope(
                &env("esp-1", 800.0),
                "esp-1",
                1000.0,
                0.0,
                120.0
            )),
            "Stale"
        );
        assert_eq!(
            kind(check_envelope(
                &env("esp-1", 1200.0),
                "esp-1",
                1000.0,
                0.0,
                120.0
            )),
            "Stale"
        );
        assert_eq!(
            kind(check_envelope(
                &env("esp-1", 950.0),
                "esp-1",
                1000.0,
                960.0,
                120.0
            )),
            "Stale"
        );
        let no_ts = Envelope {
            receiver: Some("esp-1".into()),
            ..Envelope::default()
        };
        assert_eq!(
            kind(check_envelope(&no_ts, "esp-1", 1000.0, 0.0, 120.0)),
            "Stale"
        );
    }
}
