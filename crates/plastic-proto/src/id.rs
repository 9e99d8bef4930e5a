//! Message ids: 128 random bits as 32 hex digits.
//!
//! The seed's later version used millisecond time stamps as correlation ids, and two requests in
//! the same millisecond got each other's replies. Random ids cannot collide in practice and need
//! no coordination between the many clients and nodes that mint them.

use rand::RngCore;

pub fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut out = String::with_capacity(32);
    for b in bytes {
        out.push(char::from_digit((b >> 4) as u32, 16).unwrap_or('0'));
        out.push(char::from_digit((b & 0xf) as u32, 16).unwrap_or('0'));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_32_hex_digits_and_distinct() {
        let a = super::new_message_id();
        let b = super::new_message_id();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
