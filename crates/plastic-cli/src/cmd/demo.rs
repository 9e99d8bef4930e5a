//! `plastic demo`: the seed's demo, end to end, on an embedded hub with 3 simulated nodes.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use plastic_client::{BrokerUrl, Client, ClientOptions};
use plastic_hub::{start_broker, BrokerOptions};
use plastic_node::Node;
use plastic_proto::command::Eval;
use plastic_proto::file::chunks;
use plastic_proto::Operation;
use plastic_proto::{NodeName, NodeState, RelPath, Reply, Request};
use serde_json::{json, Value};

use crate::global::Global;

const SCRIPT_TO_DEPLOY: &str = include_str!("../../../../examples/script_to_deploy.py");
const FUNCTIONS: &str = include_str!("../../../../examples/functions.py");
const NODES: [&str; 3] = ["demo-1", "demo-2", "demo-3"];

pub async fn run(global: &Global) -> Result<ExitCode> {
    let broker = start_broker(BrokerOptions {
        listen: "127.0.0.1:0".parse()?,
        board_listen: None,
        tls: None,
        policy: None,
        limits: Default::default(),
        topics: plastic_proto::Topics::new(&global.prefix)?,
        observer: plastic_hub::observe::Observer::counting_only(),
    })
    .await?;
    println!("hub: embedded MQTT broker on {}", broker.addr);
    println!(
        "each step shows the `plastic` command that does it (with PLASTIC_BROKER=mqtt://{}) and the seed's message",
        broker.addr
    );
    let url = BrokerUrl::local(broker.addr.port());
    let root = std::env::temp_dir().join(format!("plastic-demo-{}", std::process::id()));
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut nodes = tokio::task::JoinSet::new();
    let demo_global = Global {
        broker: url.to_string(),
        ..global.clone()
    };
    for name in NODES {
        let config = super::node::node_config(
            &demo_global,
            name,
            vec!["demo".into()],
            root.join(name),
            "sim",
        )?;
        let node = Node::start(config)?;
        let mut stop = stop_tx.subscribe();
        nodes.spawn(node.run(async move {
            let _ = stop.recv().await;
        }));
    }
    let (client, _) = Client::connect(ClientOptions::new(
        url,
        ClientOptions::ephemeral_name("demo"),
    ));
    client.wait_connected(Duration::from_secs(10)).await?;
    let result = walk_through(&client).await;
    client.shutdown(None).await;
    let _ = stop_tx.send(());
    while nodes.join_next().await.is_some() {}
    let _ = std::fs::remove_dir_all(&root);
    result?;
    println!("\ndemo complete: every step of the seed ran on 3 nodes through one hub.");
    Ok(ExitCode::SUCCESS)
}

async fn walk_through(client: &Client) -> Result<()> {
    let timeout = Duration::from_secs(10);
    let mut events = client.presence_events();
    client.track_presence().await?;
    let mut online = std::collections::BTreeSet::new();
    for p in client.nodes(timeout).await? {
        if p.state == NodeState::Online {
            online.insert(p.name);
        }
    }
    while online.len() < NODES.len() {
        let event = tokio::time::timeout(timeout, events.recv())
            .await
            .context("nodes did not come online")??;
        if event.current.state == NodeState::Online {
            online.insert(event.current.name);
        }
    }
    println!(
        "nodes online: {}",
        online.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    let node = NodeName::parse(NODES[0])?;

    step("blink the LED 10 times");
    show(
        client,
        &node,
        "plastic blink demo-1 --times 10 --on 0.05 --off 0.05",
        json!({"type": "command", "command": "blink led",
        "kwargs": {"times": 10, "forever": false, "on_seconds": 0.05, "off_seconds": 0.05}}),
    )
    .await?;
    step("read GPIOs");
    show(
        client,
        &node,
        "plastic gpio demo-1 read",
        json!({"type": "command", "command": "read GPIOs", "need_result": true}),
    )
    .await?;
    step("write GPIOs in order (pin 2 is the on-board LED)");
    show(
        client,
        &node,
        "plastic gpio demo-1 write 2=0 2=1 2=0",
        json!({"type": "command", "command": "write GPIOs",
        "kwargs": {"pins_and_values": [[2, 0], [2, 1], [2, 0]]}}),
    )
    .await?;
    step("eval '2+3'");
    show(
        client,
        &node,
        "plastic eval demo-1 '2+3'",
        json!({"type": "eval", "to_evaluate": "2+3", "need_result": true}),
    )
    .await?;
    step("exec a statement");
    show(
        client,
        &node,
        "plastic exec demo-1 'print(\"Testing exec !\")'",
        json!({"type": "exec", "to_exec": "print(\"Testing exec !\")"}),
    )
    .await?;
    step("deploy the blink-forever script; the node now runs on its own");
    show(
        client,
        &node,
        "plastic run demo-1 examples/script_to_deploy.py --name main",
        json!({"type": "script", "script": SCRIPT_TO_DEPLOY}),
    )
    .await?;
    show(
        client,
        &node,
        "plastic info demo-1",
        json!({"type": "command", "command": "info"}),
    )
    .await?;
    step("stop the script without restarting the node");
    show(
        client,
        &node,
        "plastic stop demo-1",
        json!({"type": "command", "command": "stop"}),
    )
    .await?;
    step("upload functions.py, import it, call a function");
    for chunk in chunks(
        &RelPath::parse("functions.py")?,
        FUNCTIONS.as_bytes(),
        16 * 1024,
    ) {
        show(
            client,
            &node,
            "plastic cp examples/functions.py demo-1:functions.py",
            Value::Object(chunk.to_fields()),
        )
        .await?;
    }
    show(
        client,
        &node,
        "plastic exec demo-1 'import functions'",
        json!({"type": "exec", "to_exec": "import functions"}),
    )
    .await?;
    show(
        client,
        &node,
        "plastic call demo-1 functions.add '{\"a\":2,\"b\":3}'",
        json!({"type": "function", "function": "functions.add", "kwargs": {"a": 2, "b": 3}}),
    )
    .await?;
    step("node to node: demo-1 asks demo-2 directly, from Python");
    show(client, &node, "plastic exec demo-1 \"import plastic; print(plastic.request('demo-2', {...}))\"", json!({"type": "exec", "to_exec":
        "import plastic\nanswer = plastic.request('demo-2', {'type': 'eval', 'to_evaluate': '2+3', 'need_result': True})\nprint('demo-2 answered', answer)"})).await?;
    step("broadcast to every node");
    println!("$ plastic eval all \"__import__('plastic').name\"");
    let everyone: Vec<NodeName> = NODES
        .iter()
        .map(|n| NodeName::parse(n))
        .collect::<Result<_, _>>()?;
    let mut replies = client
        .request_many(
            &client.topics().all_inbox(),
            "all",
            Eval::new("__import__('plastic').name").to_request(),
            &everyone,
            timeout,
        )
        .await?;
    replies.sort_by(|a, b| a.0.cmp(&b.0));
    for (who, reply) in replies {
        match reply {
            Ok(r) => println!("  {who}: {}", r.result),
            Err(e) => bail!("{who} did not answer the broadcast: {e}"),
        }
    }
    Ok(())
}

fn step(title: &str) {
    println!("\n== {title}");
}

/// Sends a seed message as `client.request(remote_node, message)` does and prints the reply,
/// under the `plastic` command line that does the same.
async fn show(client: &Client, node: &NodeName, command: &str, message: Value) -> Result<Reply> {
    let mut shown = message.clone();
    if let Some(script) = shown.get_mut("script") {
        *script = json!(format!(
            "<{} lines of Python>",
            script.as_str().unwrap_or("").lines().count()
        ));
    }
    if let Some(content) = shown.get_mut("content") {
        *content = json!("<base64>");
    }
    println!("$ {command}");
    println!("  seed: client.request({:?}, {shown})", node.as_str());
    let Value::Object(fields) = message else {
        bail!("demo messages are objects")
    };
    let reply = client
        .request(node, Request::new(fields), Duration::from_secs(10))
        .await?;
    for line in reply.stdout.lines() {
        println!("  | {line}");
    }
    if reply.ok {
        println!("  -> {}", reply.result);
        Ok(reply)
    } else {
        let e = reply
            .error
            .clone()
            .unwrap_or_else(|| plastic_proto::ErrorInfo::new("?", "?"));
        bail!("{node} failed: {}: {}\n{}", e.kind, e.message, e.traceback)
    }
}
