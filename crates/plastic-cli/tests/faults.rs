//! Fault injection: a node behind a TCP fault proxy (delay, stall, a packet cut in half, FIN,
//! RST),
//! the hub killed with SIGKILL while 1,000 requests are in flight, an upload cut half way.
//! Every request must end with a definite outcome, and counters kept on the nodes prove that
//! nothing ran twice and nothing acknowledged was lost.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::proxy::{Fault, FaultProxy};
use common::{plastic, BrokerKind, Fleet, Proc};
use plastic_client::{BrokerUrl, Client, ClientError, ClientOptions};
use plastic_proto::command::Exec;
use plastic_proto::{NodeName, Operation};

fn node_behind(f: &Fleet, proxy: &FaultProxy, name: &str) -> Proc {
    common::start_node(name, &proxy.url(), &f.root_of(name), &[])
}

fn eval(f: &Fleet, node: &str, code: &str) -> String {
    f.ok(&["eval", node, code]).trim().to_owned()
}

fn a_node_behind_a_faulty_link(kind: BrokerKind) {
    let f = Fleet::new(kind);
    let proxy = FaultProxy::start(f.broker.port);
    let node = node_behind(&f, &proxy, "edge-1");
    f.ok(&["exec", "edge-1", "c = 0"]);

    // Delay: slow, but right.
    proxy.set(Fault::Delay(Duration::from_millis(100)));
    assert_eq!(eval(&f, "edge-1", "6*7"), "42");
    proxy.set(Fault::Pass);

    // A request torn in half on its way to the node: the node reconnects, its persistent
    // session gets the request again, and it runs once.
    proxy.set(Fault::CutNextMidPacket);
    f.ok(&["exec", "edge-1", "c += 1"]);
    assert_eq!(proxy.cuts(), 1, "the cut happened");
    node.wait_contains("online");
    assert_eq!(eval(&f, "edge-1", "c"), "1");

    // RST on every connection while idle: the node comes back on its own.
    proxy.reset_all();
    node.wait_contains("online");
    f.ok(&["exec", "edge-1", "c += 1"]);
    assert_eq!(eval(&f, "edge-1", "c"), "2");

    // Every connection dropped (FIN): the same.
    proxy.drop_all();
    node.wait_contains("online");
    f.ok(&["exec", "edge-1", "c += 1"]);
    assert_eq!(eval(&f, "edge-1", "c"), "3");

    // A stalled link: the request waits in the network and runs once when it flows again.
    proxy.set(Fault::Stall);
    let port = f.broker.port;
    let stalled = std::thread::scope(|scope| {
        let request = scope.spawn(move || {
            plastic()
                .args(["--timeout", "20", "exec", "edge-1", "c += 1"])
                .env("PLASTIC_BROKER", format!("mqtt://127.0.0.1:{port}"))
                .output()
                .unwrap()
        });
        // The outage itself (not a synchronisation): one second without traffic.
        std::thread::sleep(Duration::from_secs(1));
        proxy.set(Fault::Pass);
        request.join().unwrap()
    });
    assert!(stalled.status.success(), "{stalled:?}");
    assert_eq!(
        eval(&f, "edge-1", "c"),
        "4",
        "four acknowledged increments, four runs"
    );
}

/// The issue's scenario: 1,000 requests to 10 nodes, the hub SIGKILLed and restarted while they
/// are in flight. Every request ends (reply, or a named error); every acknowledged request ran
/// exactly once; nothing ran twice.
#[test]
fn hub_killed_while_1000_requests_are_in_flight() {
    const NODES: usize = 10;
    const REQUESTS: usize = 1000;
    let mut f = Fleet::new(BrokerKind::Embedded);
    let mut sim = plastic();
    sim.args(["sim", "--nodes", &NODES.to_string(), "--name-prefix", "k"])
        .args(["--broker", &f.broker.url()])
        .arg("--root")
        .arg(f.dir.path().join("sim"));
    let sim = Proc::spawn(sim, "plastic sim");
    sim.wait_contains("nodes online");
    let names: Vec<NodeName> = (1..=NODES)
        .map(|i| NodeName::parse(&format!("k-{i}")).unwrap())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let (client, _deliveries) = Client::connect(ClientOptions::new(
            BrokerUrl::local(f.broker.port),
            ClientOptions::ephemeral_name("driver"),
        ));
        client
            .wait_connected(Duration::from_secs(10))
            .await
            .unwrap();
        // As the CLI does: presence tells the client when a node is back.
        client.track_presence().await.unwrap();
        for node in &names {
            let r = client
                .request(
                    node,
                    Exec::new("ran = []").to_request(),
                    Duration::from_secs(10),
                )
                .await
                .unwrap();
            assert!(r.ok, "{r:?}");
        }
        client
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut tasks = Vec::new();
    for i in 0..REQUESTS {
        let node = names[i % NODES].clone();
        let client = client.clone();
        let done = done_tx.clone();
        tasks.push(rt.spawn(async move {
            let outcome = client
                .request(
                    &node,
                    Exec::new(format!("ran.append({i})")).to_request(),
                    Duration::from_secs(15),
                )
                .await;
            let _ = done.send(());
            (i, node, outcome)
        }));
    }
    // Kill the hub once a fifth of the replies are in: the rest are in flight or queued.
    for _ in 0..REQUESTS / 5 {
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    f.broker.restart();
    // Replies that arrived while the hub was being killed and restarted.
    let answered_at_restart = REQUESTS / 5 + done_rx.try_iter().count();
    let outcomes: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    // Every request ended; tell the kinds apart.
    let mut acknowledged: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (i, node, outcome) in &outcomes {
        let kind = match outcome {
            Ok(r) if r.ok => {
                acknowledged.entry(node.to_string()).or_default().insert(*i);
                "ok".to_owned()
            }
            Ok(r) => format!(
                "error:{}",
                r.error.as_ref().map(|e| e.kind.as_str()).unwrap_or("?")
            ),
            Err(ClientError::Timeout { .. }) => "timeout".to_owned(),
            Err(ClientError::NodeLost { .. }) => "node lost".to_owned(),
            Err(e) => panic!("request {i} to {node} ended without a definite outcome: {e}"),
        };
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(outcomes.len(), REQUESTS);
    // What ran, per node, read back after the nodes reconnected to the new hub.
    let (ran_total, ran_unacknowledged) =
        rt.block_on(common::assert_each_ran_once(&client, &names, &acknowledged));
    let ok = kinds.get("ok").copied().unwrap_or(0);
    eprintln!(
        "hub killed with {REQUESTS} requests in flight: {answered_at_restart} answered when the \
         new hub was up; outcomes {kinds:?}; ran {ran_total} (acknowledged {ok}, ran but reply \
         lost with the hub {ran_unacknowledged}), none twice"
    );
    assert!(
        answered_at_restart < REQUESTS,
        "the kill came too late to test anything"
    );
    assert!(
        ok >= REQUESTS / 5,
        "the replies before the kill were counted: {kinds:?}"
    );
    rt.block_on(client.shutdown(None));
}

/// Polls `condition` (a byte counter the proxy keeps) until it holds.
fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + common::WAIT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// An upload whose link is reset half way goes on by itself; an upload whose `plastic cp` is
/// killed half way resumes, when run again, from the bytes the node already has.
#[test]
fn uploads_cut_half_way_resume() {
    let f = Fleet::new(BrokerKind::Embedded);
    let node_link = FaultProxy::start(f.broker.port);
    let _node = node_behind(&f, &node_link, "up-1");
    let data: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = f.dir.path().join("big.bin");
    std::fs::write(&local, &data).unwrap();
    let sha = plastic_proto::file::sha256_hex(&data);
    let stored = f.root_of("up-1").join("big.bin");

    // 1. The node's link is reset when half the file has gone through it.
    let before = node_link.downstream_bytes();
    let out = std::thread::scope(|scope| {
        let cp = scope.spawn(|| {
            f.cli(&[
                "--timeout",
                "20",
                "cp",
                local.to_str().unwrap(),
                "up-1:big.bin",
            ])
        });
        wait_until("half the file reached the node", || {
            node_link.downstream_bytes() - before > data.len() as u64 / 2
        });
        node_link.reset_all();
        cp.join().unwrap()
    });
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("verified"), "{out:?}");
    assert_eq!(
        plastic_proto::file::sha256_hex(&std::fs::read(&stored).unwrap()),
        sha
    );

    // 2. `plastic cp` itself is killed half way (its own link counts the bytes), then run again.
    std::fs::remove_file(&stored).unwrap();
    let cli_link = FaultProxy::start(f.broker.port);
    let mut cp = plastic();
    cp.args(["--broker", &cli_link.url(), "--timeout", "20", "cp"])
        .arg(&local)
        .arg("up-1:big.bin");
    let mut cp = Proc::spawn(cp, "plastic cp");
    wait_until("half the file left plastic cp", || {
        cli_link.upstream_bytes() > data.len() as u64 * 2 / 3
    });
    cp.kill();
    assert!(!stored.exists(), "a half upload must not replace the file");
    let out = f.cli(&[
        "--timeout",
        "20",
        "cp",
        local.to_str().unwrap(),
        "up-1:big.bin",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let resumed_at: u64 = out
        .stderr
        .lines()
        .find_map(|l| l.split("resuming at byte ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("did not resume: {out:?}"))
        .parse()
        .unwrap();
    assert!(
        resumed_at > 0 && resumed_at < data.len() as u64,
        "{resumed_at}"
    );
    assert_eq!(
        plastic_proto::file::sha256_hex(&std::fs::read(&stored).unwrap()),
        sha
    );
    eprintln!(
        "upload of {} bytes resumed at byte {resumed_at}",
        data.len()
    );
}

/// A node SIGKILLed in the middle of an exec and started again: the waiting request ends as
/// "lost (it restarted)", and is not sent to the restarted node (which has forgotten what it
/// ran), so it ran exactly once.
fn a_node_killed_mid_exec_and_restarted(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("re-1", &[]);
    let watch = f.watch();
    let runs = f.dir.path().join("runs.txt");
    let mut slow = plastic();
    slow.args(["--timeout", "60", "exec", "re-1"])
        .arg(format!(
            "open({:?}, 'a').write('x')\nimport time, plastic\nplastic.publish('busy', 1)\ntime.sleep(50)",
            runs.to_str().unwrap()
        ))
        .env("PLASTIC_BROKER", f.broker.url());
    let slow = Proc::spawn(slow, "slow exec");
    watch.wait_contains("\"topic\":\"busy\"");
    f.node_proc("re-1").kill();
    f.nodes.retain(|(n, _)| n != "re-1");
    f.node("re-1", &[]);
    slow.wait_line(
        |l| l.contains("node re-1 went lost"),
        "the request ending as lost",
    );
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "x",
        "the interrupted exec ran once, and was not sent again"
    );
}

on_both_brokers!(
    a_node_behind_a_faulty_link,
    a_node_killed_mid_exec_and_restarted,
    a_retained_request_runs_once
);

/// A request published as retained reaches its node once; the copy the broker replays on every
/// subscribe (here: after the node restarts) is refused, not run again.
fn a_retained_request_runs_once(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("ret-1", &[]);
    let watch = f.watch();
    let runs = f.dir.path().join("runs.txt");
    let replies = f.mosquitto_sub("plastic/tester/in");
    let request = serde_json::json!({"type": "exec", "need_result": true, "message_id": "ret-m",
        "sender": "tester", "to_exec": format!("open({:?}, 'a').write('x')", runs.to_str().unwrap())});
    f.mosquitto_pub_with("plastic/ret-1/in", request.to_string().as_bytes(), &["-r"]);
    replies.wait_contains("ret-m");
    f.node_proc("ret-1").kill();
    f.nodes.retain(|(n, _)| n != "ret-1");
    f.node("ret-1", &[]);
    watch.wait_contains("Retained");
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "x");
    // Clear the retained message, as a user who made this mistake would.
    f.mosquitto_pub_with("plastic/ret-1/in", b"", &["-r"]);
}
