//! Nothing silently lost: many requests pipelined to one `plastic node` all end in a definite
//! outcome (a result, `Busy`, or a named error), and the node ran exactly as many as answered
//! `ok`. The node counts its executions in its own namespace.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{BrokerKind, Fleet};
use plastic_client::{BrokerUrl, Client, ClientError, ClientOptions};
use plastic_proto::command::{Eval, Exec};
use plastic_proto::{NodeName, Operation};
use tokio::task::JoinSet;

/// How many requests are pipelined (all at once: no window on the caller's side), and what
/// each evaluates. The expression is slow enough (~0.3 ms) that the node falls behind and
/// requests pile up: before the client's window, Mosquitto dropped some of them and some
/// replies (docs/reliability.md, "Pipelining"). `PLASTIC_PIPELINE_N` / `_EXPR` change them.
fn count() -> usize {
    std::env::var("PLASTIC_PIPELINE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000)
}

fn expression() -> String {
    std::env::var("PLASTIC_PIPELINE_EXPR")
        .unwrap_or_else(|_| "hits.append(sum(range(2000)))".into())
}

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    /// Error replies by kind (`Busy`, ...).
    refused: BTreeMap<String, usize>,
    /// No reply: the client's named error.
    failed: BTreeMap<String, usize>,
}

/// A client connected with `opts`, once it has seen `name`'s presence, with `hits = []` set
/// on that node (each request of the tests appends to it, so runs can be counted).
async fn connect_to(opts: ClientOptions, name: &str) -> (Client, NodeName) {
    let (client, _) = Client::connect(opts);
    client.wait_connected(common::WAIT).await.unwrap();
    let node = NodeName::parse(name).unwrap();
    client
        .nodes_named(std::slice::from_ref(&node), common::WAIT)
        .await
        .unwrap();
    let setup = client
        .request(&node, Exec::new("hits = []").to_request(), common::WAIT)
        .await
        .unwrap();
    assert!(setup.ok, "{setup:?}");
    (client, node)
}

fn pipelined(kind: BrokerKind) {
    let n = count();
    let mut fleet = Fleet::new(kind);
    fleet.node("pipe-1", &[]);
    let broker = BrokerUrl::parse(&fleet.broker.url()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (tally, executed, seconds) = rt.block_on(async move {
        let mut opts = ClientOptions::new(broker, ClientOptions::ephemeral_name("pipe"));
        // `PLASTIC_PIPELINE_WINDOW=0` turns the client's window off, to see what brokers drop.
        if let Some(window) = std::env::var("PLASTIC_PIPELINE_WINDOW")
            .ok()
            .and_then(|w| w.parse().ok())
        {
            opts.window = window;
        }
        let (client, node) = connect_to(opts, "pipe-1").await;
        let started = Instant::now();
        let mut set = JoinSet::new();
        for _ in 0..n {
            let (client, node) = (client.clone(), node.clone());
            set.spawn(async move {
                client
                    .request(
                        &node,
                        Eval::new(expression()).to_request(),
                        Duration::from_secs(120),
                    )
                    .await
            });
        }
        let mut tally = Tally::default();
        while let Some(joined) = set.join_next().await {
            match joined.unwrap() {
                Ok(reply) if reply.ok => tally.ok += 1,
                Ok(reply) => {
                    let kind = reply.error.map(|e| e.kind).unwrap_or_default();
                    *tally.refused.entry(kind).or_default() += 1;
                }
                Err(e) => {
                    let name = match e {
                        ClientError::Timeout { .. } => "Timeout".to_owned(),
                        other => other.to_string(),
                    };
                    *tally.failed.entry(name).or_default() += 1;
                }
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let count = client
            .request(&node, Eval::new("len(hits)").to_request(), common::WAIT)
            .await
            .unwrap();
        client.shutdown(None).await;
        (tally, count.result.as_u64().unwrap() as usize, seconds)
    });
    let console = fleet.broker.console().output_so_far();
    let drops: Vec<&str> = console.lines().filter(|l| l.contains("dropped")).collect();
    eprintln!(
        "broker drop lines: {}: {:?}",
        drops.len(),
        drops.iter().take(5).collect::<Vec<_>>()
    );
    let refused: usize = tally.refused.values().sum();
    let failed: usize = tally.failed.values().sum();
    eprintln!(
        "{kind:?}: {n} pipelined in {seconds:.1} s: {} ok, refused {:?}, failed {:?}; the node ran {executed}",
        tally.ok, tally.refused, tally.failed
    );
    assert_eq!(
        tally.ok + refused + failed,
        n,
        "every request has an outcome"
    );
    assert_eq!(failed, 0, "no request may end without an answer: {tally:?}");
    assert!(drops.is_empty(), "the broker dropped messages: {drops:?}");
    assert_eq!(executed, tally.ok, "runs == ok replies: {tally:?}");
}

on_both_brokers!(pipelined);

/// docs/reliability.md ("outcome"): a request that finds the node's window full until its
/// timeout ends `NotSent`, and did not run. A window of 1, held by a request that sleeps 2 s
/// on the node; the second request may wait 0.3 s for room.
#[test]
fn a_request_that_never_finds_room_in_the_window_is_not_sent() {
    let mut fleet = Fleet::new(BrokerKind::Embedded);
    fleet.node("pipe-2", &[]);
    let broker = BrokerUrl::parse(&fleet.broker.url()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let mut opts = ClientOptions::new(broker, ClientOptions::ephemeral_name("pipe"));
        opts.window = 1;
        let (client, node) = connect_to(opts, "pipe-2").await;
        // `join!` polls the first request first: it takes the window's one place before the
        // second asks for it.
        let slow = Exec::new("import time\ntime.sleep(2)\nhits.append('slow')").to_request();
        let (first, second) = tokio::join!(
            client.request(&node, slow, common::WAIT),
            client.request(
                &node,
                Exec::new("hits.append('second')").to_request(),
                Duration::from_millis(300)
            ),
        );
        assert!(first.unwrap().ok);
        match second {
            Err(ClientError::NotSent { node, window, .. }) => {
                assert_eq!((node.as_str(), window), ("pipe-2", 1));
            }
            other => panic!("expected NotSent, got {other:?}"),
        }
        // It never left the client; with the window free again, requests go through.
        let hits = client
            .request(&node, Eval::new("hits").to_request(), common::WAIT)
            .await
            .unwrap();
        assert_eq!(hits.result, serde_json::json!(["slow"]));
        client.shutdown(None).await;
    });
}
