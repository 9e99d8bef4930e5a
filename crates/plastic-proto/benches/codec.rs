//! The protocol's hot paths: every request is parsed once by a node and every reply encoded
//! once and parsed once by a client. `cargo bench -p plastic-proto`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use plastic_proto::command::Eval;
use plastic_proto::file::chunks;
use plastic_proto::Operation;
use plastic_proto::{FileChunk, Incoming, NodeName, RelPath, Reply};
use serde_json::json;

fn codec(c: &mut Criterion) {
    let me = NodeName::parse("cli-1a2b3c4d").unwrap();
    let mut eval = Eval::new("2+3").to_request();
    eval.set_need_result(true);
    eval.stamp(&me, "pi-1", 1_764_057_600.25);
    let eval_bytes = eval.to_bytes();
    c.bench_function("parse eval request", |b| {
        b.iter(|| Incoming::parse(black_box(&eval_bytes)).unwrap())
    });
    c.bench_function("build and stamp eval request", |b| {
        b.iter(|| {
            let mut r = Eval::new(black_box("2+3")).to_request();
            r.set_need_result(true);
            r.stamp(&me, "pi-1", 1.0);
            r.to_bytes()
        })
    });
    let mut reply = Reply::ok("0123456789abcdef0123456789abcdef", json!(5));
    reply.sender = Some("pi-1".into());
    c.bench_function("encode reply", |b| b.iter(|| black_box(&reply).to_bytes()));
    let reply_bytes = reply.to_bytes();
    c.bench_function("decode reply", |b| {
        b.iter(|| serde_json::from_slice::<Reply>(black_box(&reply_bytes)).unwrap())
    });
    let gpio = serde_json::to_vec(&json!({"type": "command", "command": "write GPIOs", "need_result": true,
        "kwargs": {"pins_and_values": [[2, 0], [2, 1], [2, 0]]}, "message_id": "m", "sender": "cli"}))
    .unwrap();
    c.bench_function("parse write GPIOs request", |b| {
        b.iter(|| Incoming::parse(black_box(&gpio)).unwrap())
    });
    // Signed requests: what a node key adds on each side.
    let key = plastic_proto::NodeKey::from_hex(&"5a".repeat(32)).unwrap();
    c.bench_function("sign eval request", |b| {
        b.iter(|| key.sign(black_box(&eval_bytes)))
    });
    let signed = key.sign(&eval_bytes);
    c.bench_function("verify signed eval request", |b| {
        b.iter(|| key.verify(black_box(&signed)).unwrap())
    });
    let data = vec![7u8; 16 * 1024];
    let chunk = serde_json::to_vec(
        &chunks(&RelPath::parse("f.bin").unwrap(), &data, 16 * 1024)[0].to_fields(),
    )
    .unwrap();
    let mut group = c.benchmark_group("file chunk");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("parse 16 KiB chunk", |b| {
        b.iter(|| {
            let incoming = Incoming::parse(black_box(&chunk)).unwrap();
            matches!(
                incoming.body,
                Ok(plastic_proto::Body::File(FileChunk { .. }))
            )
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
