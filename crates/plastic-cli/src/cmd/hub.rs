//! `plastic hub`: the embedded broker plus the registry's console.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Result;
use plastic_client::BrokerUrl;
use plastic_hub::{describe_change, start_broker, Registry};
use plastic_proto::Topics;

use crate::args::Global;

pub async fn run(
    global: &Global,
    listen: SocketAddr,
    external: bool,
    insecure: bool,
) -> Result<ExitCode> {
    let topics = Topics::new(&global.prefix)?;
    if !external && !listen.ip().is_loopback() {
        if !insecure {
            anyhow::bail!(
                "refusing to listen on {listen} without authentication: anyone who can reach it could run \
                 code on every node. Listen on 127.0.0.1, or pass --insecure on a network you trust"
            );
        }
        eprintln!("WARNING: listening on {listen} without authentication (--insecure): anyone who can reach this port can run code on every node");
    }
    let broker = if external {
        let url = BrokerUrl::parse(&global.broker)?;
        println!("plastic hub: using the external broker at {url}");
        url
    } else {
        let handle = start_broker(listen).await?;
        // Tests and scripts read the bound port from this line.
        println!("plastic hub: MQTT broker listening on {}", handle.addr);
        BrokerUrl::local(handle.addr.port())
    };
    let registry = Registry::connect(broker, topics).await?;
    let mut events = registry.events();
    for node in registry.nodes().await? {
        println!(
            "node {} {} [{} {}]",
            node.name,
            node.state.as_str(),
            node.platform,
            node.version
        );
    }
    let shutdown = super::node::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = events.recv() => match event {
                Ok(event) => println!("{}", describe_change(&event)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("({n} presence changes not shown)"),
                Err(_) => break,
            },
        }
    }
    registry.shutdown().await;
    println!("plastic hub: stopped");
    Ok(ExitCode::SUCCESS)
}
