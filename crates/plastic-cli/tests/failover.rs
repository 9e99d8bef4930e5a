//! Failover between brokers (`--broker URL,URL`, docs/scaling.md): nodes and clients that know
//! two brokers move to the second when the first is SIGKILLed under load. Every request ends
//! with a definite outcome, nothing runs twice, and the fleet answers on the second broker.
//! The two brokers here are independent (no cluster): what fails over is the clients and nodes,
//! which is what a cluster's members need from them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{plastic, Broker, BrokerKind, Proc};
use plastic_client::{BrokerUrl, Client, ClientError, ClientOptions};
use plastic_proto::command::Exec;
use plastic_proto::{NodeName, Operation};

const NODES: usize = 5;
const REQUESTS: usize = 500;

fn killed_under_load(kind: BrokerKind) {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Broker::start(kind, dir.path());
    let second = Broker::start(kind, dir.path());
    let both = format!("{},{}", first.url(), second.url());
    let mut sim = plastic();
    sim.args(["sim", "--nodes", &NODES.to_string(), "--name-prefix", "f"])
        .args(["--broker", &both])
        .arg("--root")
        .arg(dir.path().join("sim"));
    let sim = Proc::spawn(sim, "plastic sim");
    sim.wait_contains("nodes online");
    let names: Vec<NodeName> = (1..=NODES)
        .map(|i| NodeName::parse(&format!("f-{i}")).unwrap())
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let mut opts = ClientOptions::new(
            BrokerUrl::local(first.port),
            ClientOptions::ephemeral_name("driver"),
        );
        opts.alternates = vec![BrokerUrl::local(second.port)];
        let (client, _deliveries) = Client::connect(opts);
        client
            .wait_connected(Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(client.broker().port, first.port, "the list's first broker");
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
    // Nobody is on the second broker yet: the nodes took the list's first.
    let on_second = common::run(plastic().args(["ls", "--json", "--broker", &second.url()]));
    assert!(
        !on_second.stdout.contains("\"f-1\""),
        "nodes on the second broker before the first failed: {on_second:?}"
    );

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
                    Duration::from_secs(20),
                )
                .await;
            let _ = done.send(());
            (i, node, outcome)
        }));
    }
    for _ in 0..REQUESTS / 5 {
        done_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    first.kill();
    let answered_at_kill = REQUESTS / 5 + done_rx.try_iter().count();
    let outcomes: Vec<_> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
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
    assert_eq!(client.broker().port, second.port, "the client moved");

    // A client that knows only the second broker reaches every node: they moved too. What
    // each ran: no request twice, none acknowledged and lost.
    let (only_second, _d) = rt.block_on(async {
        let (c, d) = Client::connect(ClientOptions::new(
            BrokerUrl::local(second.port),
            ClientOptions::ephemeral_name("reader"),
        ));
        c.wait_connected(Duration::from_secs(10)).await.unwrap();
        (c, d)
    });
    let (ran_total, _) = rt.block_on(common::assert_each_ran_once(
        &only_second,
        &names,
        &acknowledged,
    ));
    let ok = kinds.get("ok").copied().unwrap_or(0);
    eprintln!(
        "{kind:?}: first broker killed with {REQUESTS} requests in flight ({answered_at_kill} \
         answered by then); outcomes {kinds:?}; ran {ran_total}, none twice"
    );
    assert!(
        answered_at_kill < REQUESTS,
        "the kill came too late to test anything"
    );
    assert!(
        ok > answered_at_kill,
        "requests went on through the second broker: {kinds:?}"
    );

    // The CLI with the same list, its first broker dead: it connects to the second.
    let out = common::run(plastic().args(["eval", "--broker", &both, "f-1", "2+3"]));
    assert_eq!((out.code, out.stdout.trim()), (0, "5"), "{out:?}");
    // Every broker of a list down: one error naming them all.
    let dead = format!("{},mqtt://127.0.0.1:{}", first.url(), common::free_port());
    let out = common::run(plastic().args(["ls", "--timeout", "1", "--broker", &dead]));
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&first.url()[7..]) && out.stderr.contains(','),
        "the error names every broker: {out:?}"
    );

    rt.block_on(only_second.shutdown(None));
    rt.block_on(client.shutdown(None));
}

#[test]
fn embedded_hub_killed_under_load_nodes_and_clients_move_to_the_second() {
    killed_under_load(BrokerKind::Embedded);
}

#[test]
fn mosquitto_killed_under_load_nodes_and_clients_move_to_the_second() {
    killed_under_load(BrokerKind::Mosquitto);
}

/// Bad lists are refused before anything connects, with the reason and without passwords.
#[test]
fn bad_broker_lists_are_refused_clearly() {
    for (list, why) in [
        ("mqtt://127.0.0.1:1,,mqtt://127.0.0.1:2", "empty entry"),
        (
            "mqtt://alice:secret1@127.0.0.1:1,mqtt://bob:secret2@127.0.0.1:2",
            "first one's user",
        ),
        ("mqtt://127.0.0.1:1,http://127.0.0.1:2", "unknown scheme"),
    ] {
        let out = common::run(plastic().args(["ls", "--broker", list]));
        assert_eq!(out.code, 2, "{list}: {out:?}");
        assert!(out.stderr.contains(why), "{list}: {out:?}");
        assert!(!out.stderr.contains("secret"), "{list}: {out:?}");
    }
    let many = vec!["127.0.0.1"; 17].join(",");
    let out = common::run(plastic().args(["ls", "--broker", &many]));
    assert!(out.stderr.contains("at most 16"), "{out:?}");
}

/// `plastic agent bundle --broker A,B` writes the list into the agent's config; an agent from
/// that bundle whose first broker is down connects to the second and answers there.
#[test]
fn an_agent_bundled_with_a_list_skips_a_dead_first_broker() {
    let micropython = common::repo_file(".venv/bin/micropython");
    assert!(micropython.exists(), "run scripts/setup-test-deps");
    let dir = tempfile::tempdir().unwrap();
    let live = Broker::start(BrokerKind::Embedded, dir.path());
    let dead = common::free_port();
    let bundle = dir.path().join("board");
    let list = format!("mqtt://127.0.0.1:{dead},{}", live.url());
    let out = common::run(
        plastic()
            .args(["agent", "bundle", "--out"])
            .arg(&bundle)
            .args(["--broker", &list, "--name", "esp-9"]),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let config = std::fs::read_to_string(bundle.join("config.py")).unwrap();
    let expected = format!(
        "BROKER_HOST = [\"127.0.0.1:{dead}\",\"127.0.0.1:{}\"]",
        live.port
    );
    assert!(config.contains(&expected), "{config}");
    let mut agent = std::process::Command::new(micropython);
    agent
        .args(["-X", "heapsize=256k", "main.py"])
        .current_dir(&bundle);
    let agent = Proc::spawn(agent, "agent esp-9");
    agent.wait_contains("esp-9 online");
    assert!(
        agent
            .output_so_far()
            .contains(&format!("connect to 127.0.0.1:{dead} failed")),
        "it tried the first broker first: {}",
        agent.output_so_far()
    );
    let out = common::run(plastic().args(["eval", "--broker", &live.url(), "esp-9", "2+3"]));
    assert_eq!((out.code, out.stdout.trim()), (0, "5"), "{out:?}");

    // One agent speaks TLS to all of its brokers or to none.
    let out = common::run(
        plastic()
            .args(["agent", "bundle", "--out"])
            .arg(dir.path().join("mixed"))
            .args(["--broker", "mqtts://127.0.0.1:1,mqtt://127.0.0.1:2"]),
    );
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("mixed in one list"), "{out:?}");
}

/// `plastic hub --external --broker A,B`: the registry fails over like every client: with A
/// down, it starts on B and follows the nodes there.
#[test]
fn an_external_hubs_registry_follows_the_live_broker_of_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let second = Broker::start(BrokerKind::Mosquitto, dir.path());
    let first_port = common::free_port();
    let list = format!("mqtt://127.0.0.1:{first_port},{}", second.url());
    let mut hub = plastic();
    hub.args(["hub", "--external", "--http", "off", "--broker", &list]);
    let hub = Proc::spawn(hub, "plastic hub --external");
    hub.wait_contains("using the external broker");
    let _node = common::start_node("x-1", &second.url(), &dir.path().join("x-1"), &[]);
    hub.wait_line(
        |l| l.contains("node x-1 online"),
        "x-1 online on the console",
    );
}
