//! The shared test vectors (`tests/vectors/requests.json`): the MicroPython agent's tests read
//! the same file, so both implementations accept and refuse exactly the same requests.

use plastic_proto::{Incoming, ProtoError};
use serde_json::Value;

#[test]
fn rust_parser_agrees_with_every_shared_vector() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/requests.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/requests.json");
    let cases: Vec<Value> = serde_json::from_str(&text).expect("vectors are JSON");
    assert!(cases.len() >= 50, "the vector file lost its cases");
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap_or("?");
        let payload: Vec<u8> = if let Some(Value::String(raw)) = case.get("raw") {
            raw.as_bytes().to_vec()
        } else if let Some(p) = case.get("payload") {
            serde_json::to_vec(p).unwrap()
        } else if let Some(r) = case.get("raw_repeat") {
            // head + fill repeated + tail, `size` bytes in all.
            let (head, fill, tail) = (
                r["head"].as_str().unwrap(),
                r["fill"].as_str().unwrap(),
                r["tail"].as_str().unwrap(),
            );
            let size = r["size"].as_u64().unwrap() as usize;
            let mut text = head.to_owned();
            text.push_str(&fill.repeat(size - head.len() - tail.len()));
            text.push_str(tail);
            text.into_bytes()
        } else {
            panic!("case {name} has no payload, raw or raw_repeat")
        };
        let expect = &case["expect"];
        let got: Result<(), String> = match Incoming::parse(&payload) {
            // Valid JSON that is not an object has no envelope at all; malformed JSON and
            // oversized payloads are refused with a kind (logged, as nobody can be answered).
            Err(ProtoError::NotAnObject) => Err("unanswerable".into()),
            Err(e @ (ProtoError::Json(_) | ProtoError::TooLarge { .. })) => {
                Err(e.kind().to_owned())
            }
            Err(e) => Err(format!("unexpected envelope error {e}")),
            Ok(incoming) => incoming.body.map(|_| ()).map_err(|e| e.kind().to_owned()),
        };
        let ok = match (expect["parse"].as_str(), &got) {
            (Some("ok"), Ok(())) => true,
            (Some("error"), Err(kind)) => expect["kind"].as_str() == Some(kind.as_str()),
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {expect}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// `tests/vectors/signing.json`: signatures both implementations must make and judge alike.
#[test]
fn signatures_agree_with_the_shared_vectors() {
    use plastic_proto::NodeKey;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/signing.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let key = NodeKey::from_hex(doc["key"].as_str().unwrap()).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() >= 8, "the signing vectors lost their cases");
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let payload = case["payload"].as_str().unwrap().as_bytes();
        let verdict = match key.verify(payload) {
            Ok(()) => "ok",
            Err(e) => e.kind(),
        };
        assert_eq!(verdict, case["verdict"].as_str().unwrap(), "case `{name}`");
        if let Some(body) = case.get("signed_bytes").and_then(Value::as_str) {
            // Signing the same bytes gives the very same payload.
            assert_eq!(key.sign(body.as_bytes()), payload, "case `{name}`");
        }
    }
}

/// `tests/vectors/replies.json`: a request of every kind and a reply `result` of exactly the
/// documented shape. The agent's suite sends the same requests to the agent and compares its
/// replies' shapes with these; here each example must be exactly its typed reply.
#[test]
fn reply_vectors_have_the_documented_shapes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/replies.json"
    );
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("vectors are JSON");
    let mut kinds = std::collections::BTreeSet::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let request = Incoming::parse(&serde_json::to_vec(&case["request"]).unwrap()).unwrap();
        let body = request.body.unwrap_or_else(|e| panic!("{name}: {e}"));
        body.check_result(&case["result"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut extra = case["result"].clone();
        if let Value::Object(m) = &mut extra {
            m.insert("surplus".into(), true.into());
            assert!(
                body.check_result(&extra).is_err(),
                "{name}: a surplus field passed"
            );
        }
        kinds.insert(match &body {
            plastic_proto::Body::Command(c) => c.name().to_owned(),
            other => other.type_name().to_owned(),
        });
    }
    let mut every: Vec<String> = plastic_proto::command::COMMAND_NAMES
        .iter()
        .map(|n| n.to_string())
        .collect();
    every.extend(["eval", "exec", "script", "file", "apply"].map(String::from));
    for kind in every {
        assert!(kinds.contains(&kind), "no reply vector for {kind}");
    }
}
