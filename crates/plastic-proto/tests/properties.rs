//! Properties of the codec over generated inputs: whatever arrives, parsing never panics, and
//! what a client encodes, a node decodes to the same request.

use plastic_proto::command::Eval;
use plastic_proto::Operation;
use plastic_proto::{Body, Incoming, NodeName, RelPath, Reply};
use proptest::prelude::*;
use serde_json::Value;

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Incoming::parse(&bytes);
    }

    #[test]
    fn parsing_arbitrary_objects_never_panics(value in json_value(), ty in prop_oneof![
        Just("eval"), Just("exec"), Just("command"), Just("file"), Just("function"), Just("script"), Just("result")
    ]) {
        let mut object = match value { Value::Object(m) => m, other => { let mut m = serde_json::Map::new(); m.insert("x".into(), other); m } };
        object.insert("type".into(), ty.into());
        let _ = Incoming::parse(&serde_json::to_vec(&object).unwrap());
    }

    #[test]
    fn paths_and_names_never_panic_and_valid_ones_round_trip(text in "\\PC{0,80}") {
        if let Ok(p) = RelPath::parse(&text) {
            prop_assert_eq!(p.as_str(), text.as_str());
            prop_assert!(!text.starts_with('/') && !text.split('/').any(|c| c == ".." || c.is_empty()));
        }
        if let Ok(n) = NodeName::parse(&text) {
            prop_assert!(!text.contains(['/', '+', '#']));
            prop_assert_eq!(n.as_str(), text.as_str());
        }
    }

    #[test]
    fn what_a_client_encodes_a_node_decodes(code in "\\PC{0,200}", sender in "[A-Za-z0-9_.-]{1,20}", ts in 0.0f64..4e9) {
        prop_assume!(sender != "all" && sender != "group");
        let me = NodeName::parse(&sender).unwrap();
        let mut request = Eval::new(code.clone()).to_request();
        request.set_need_result(true);
        let id = request.stamp(&me, "pi-1", ts);
        let incoming = Incoming::parse(&request.to_bytes()).unwrap();
        prop_assert_eq!(incoming.body.unwrap(), Body::Eval(Eval::new(code)));
        prop_assert_eq!(incoming.envelope.reply_target(), Some(me));
        prop_assert_eq!(incoming.envelope.message_id, Some(id));
        prop_assert!(incoming.envelope.need_result);
        // serde_json's fast float parser may differ in the last bit: a microsecond is plenty.
        prop_assert!((incoming.envelope.time_stamp.unwrap() - ts).abs() < 1e-6);
    }

    #[test]
    fn replies_round_trip_with_any_result(result in json_value(), ok in any::<bool>()) {
        let reply = if ok { Reply::ok("c", result) } else { Reply::err("c", plastic_proto::ErrorInfo::new("E", "m")) };
        let back: Reply = serde_json::from_slice(&reply.to_bytes()).unwrap();
        prop_assert_eq!(back, reply);
    }
}
