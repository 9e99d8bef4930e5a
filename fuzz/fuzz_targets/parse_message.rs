//! Everything a node or client parses from the network, fed arbitrary bytes: requests
//! (envelope and body), replies, presence, signed-request checks, paths and names. None of it
//! may panic, and what parses must survive a round trip through its own encoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use plastic_proto::{Body, Incoming, NodeKey, NodeName, Presence, RelPath, Reply, Request};

fuzz_target!(|data: &[u8]| {
    // A request as a node reads it, with the Rust node's envelope allowance.
    if let Ok(incoming) = Incoming::parse_with_limit(data, 4 * plastic_proto::MAX_PAYLOAD) {
        let _ = incoming.envelope.reply_target();
        let _ = incoming.envelope.expired_by(1.0e9);
        // A built-in command a node accepts, encoded as a client would, is the same command.
        if let Ok(Body::Command(command)) = &incoming.body {
            let again = Incoming::parse(&command.to_request().to_bytes()).expect("re-encodes");
            assert_eq!(again.body, Ok(Body::Command(command.clone())));
        }
    }
    // A reply as a client reads it; what parses re-encodes and parses to the same value.
    if let Ok(reply) = serde_json::from_slice::<Reply>(data) {
        let again: Reply = serde_json::from_slice(&reply.to_bytes()).expect("a reply round-trips");
        assert_eq!(again.correlation_id, reply.correlation_id);
        assert_eq!(again.ok, reply.ok);
    }
    if let Some(p) = Presence::parse(data) {
        assert!(Presence::parse(&p.to_bytes()).is_some(), "presence round-trips");
    }
    // Signature checks on arbitrary bytes: never a panic, never a pass without the key.
    let key = NodeKey::from_hex(&"5a".repeat(32)).unwrap();
    if key.verify(data).is_ok() {
        // Only a payload this key signed verifies; re-signing its body gives it back.
        let body = [&data[..data.len() - plastic_proto::sign::SIG_SUFFIX_LEN], b"}"].concat();
        assert_eq!(key.sign(&body), data);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = RelPath::parse(text);
        if let Ok(name) = NodeName::parse(text) {
            assert!(!name.as_str().contains(['/', '+', '#']));
        }
        if let Ok(serde_json::Value::Object(fields)) = serde_json::from_str(text) {
            // A client stamping any object (seed dicts included) produces a parseable request.
            let mut request = Request::new(fields);
            let sender = NodeName::parse("fuzz").unwrap();
            request.stamp(&sender, "node", 1.0);
            let bytes = request.to_bytes();
            assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_ok());
        }
    }
});
