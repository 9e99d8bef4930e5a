//! `plastic watch`: presence changes, script output and events, as they happen.

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use clap::Args;
use plastic_proto::{unix_seconds, TopicKind};
use serde_json::{json, Value};

use crate::global::Global;
use crate::session::Session;

/// `plastic watch`'s options.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    /// Exit after this many lines
    #[arg(long)]
    pub count: Option<usize>,
}

pub async fn run(global: &Global, args: WatchArgs) -> Result<ExitCode> {
    let count = args.count;
    let mut opts = crate::session::client_options(global, "watch")?;
    opts.subscriptions = vec![opts.topics.all_logs(), opts.topics.all_events()];
    opts.presence_buffer = 4096;
    let (client, mut deliveries) = plastic_client::Client::connect(opts);
    let s = Session {
        client,
        timeout: crate::session::timeout(global)?,
        json: global.json,
        ttl: None,
    };
    s.client
        .wait_connected(s.timeout)
        .await
        .map_err(crate::exit::broker_failure)?;
    let mut presence = s.client.presence_events();
    s.client.track_presence().await?;
    // On stderr, so `--json` output stays pure; tests wait for this line.
    eprintln!("watching {} (Ctrl-C to stop)", s.client.broker());
    let mut printed = 0usize;
    let shutdown = super::node::shutdown_signal();
    tokio::pin!(shutdown);
    while count.is_none_or(|c| printed < c) {
        let line = tokio::select! {
            _ = &mut shutdown => break,
            event = presence.recv() => match event {
                Ok(e) => {
                    let p = e.current;
                    if global.json {
                        json!({"kind": "presence", "node": p.name, "state": p.state, "platform": p.platform, "since": p.since}).to_string()
                    } else {
                        format!("{} {} {} [{} {}]", clock(unix_seconds(SystemTime::now())), p.name, p.state.as_str(), p.platform, p.version)
                    }
                }
                Err(_) => continue,
            },
            delivery = deliveries.recv() => {
                let Some(d) = delivery else { break };
                let body: Value = serde_json::from_slice(&d.payload).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.payload).into_owned()));
                match d.kind {
                    Some(TopicKind::Log(node)) => {
                        if global.json {
                            json!({"kind": "log", "node": node, "line": body}).to_string()
                        } else {
                            let time = body["time"].as_f64().unwrap_or_else(|| unix_seconds(SystemTime::now()));
                            format!("{} {node} [{}] {}", clock(time), body["source"].as_str().unwrap_or("?"), body["text"].as_str().unwrap_or_default())
                        }
                    }
                    Some(TopicKind::Events(node)) | Some(TopicKind::EventsSub(node, _)) => {
                        let sub = d.topic.rsplit_once("/events").map(|(_, s)| s.trim_start_matches('/')).unwrap_or("").to_owned();
                        if global.json {
                            json!({"kind": "event", "node": node, "topic": sub, "data": body}).to_string()
                        } else {
                            format!("{} {node} event {sub}: {body}", clock(unix_seconds(SystemTime::now())))
                        }
                    }
                    _ => continue,
                }
            }
        };
        if global.json {
            println!("{line}");
        } else {
            // One line per change, whatever the node put in its fields.
            println!("{}", crate::output::shown(&line));
        }
        printed += 1;
    }
    s.close().await;
    Ok(ExitCode::SUCCESS)
}

/// `HH:MM:SS` (UTC) of a Unix time.
fn clock(t: f64) -> String {
    let s = (t.max(0.0) as u64) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
