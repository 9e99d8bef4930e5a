//! `plastic send`: any message as written (the seed's dicts work as they are).

use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use plastic_proto::Request;

use super::request::request_raw;
use crate::output::{Printer, Render};
use crate::session::Session;
use crate::target::{resolve, TargetSpec};

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic send pi-1 '{\"type\":\"eval\",\"to_evaluate\":\"2+3\",\"need_result\":true}'\n  plastic send pi-1 '{\"type\":\"command\",\"command\":\"blink led\",\"kwargs\":{\"times\":3}}' --no-wait"
)]
pub struct SendArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// The message: a JSON object; envelope fields it lacks (message_id, sender...) are added
    pub message: String,
    /// Do not wait for the reply (also when the message says "need_result": false)
    #[arg(long)]
    pub no_wait: bool,
}

/// `plastic send`: a raw message. It waits for the reply (setting `need_result`) so the user
/// sees the outcome, unless `--no-wait` is given or the message says `"need_result": false`.
pub async fn run(s: &Session, args: SendArgs) -> Result<ExitCode> {
    let fields = match serde_json::from_str::<serde_json::Value>(&args.message) {
        Ok(serde_json::Value::Object(m)) => m,
        Ok(_) => anyhow::bail!("MESSAGE must be a JSON object"),
        Err(e) => anyhow::bail!("MESSAGE is not valid JSON: {e}"),
    };
    let target = args.target.as_str();
    let no_wait = args.no_wait;
    let mut request = s.with_ttl(Request::new(fields));
    let explicit_no_result =
        request.fields.get("need_result") == Some(&serde_json::Value::Bool(false));
    if no_wait || explicit_no_result {
        let spec = TargetSpec::parse(target)?;
        let resolved = resolve(&s.client, &spec, s.timeout).await?;
        let printer = Printer {
            json: s.json,
            multi: spec.is_multi(),
        };
        for (node, why) in &resolved.unreachable {
            printer.failure(node, "NodeNotOnline", why);
        }
        let pool = resolved
            .pool
            .as_ref()
            .map(|p| {
                let topic = s.client.topics().pool_inbox(p)?;
                anyhow::Ok((topic, format!("pool:{p}")))
            })
            .transpose()?;
        match pool.as_ref().or(resolved.broadcast.as_ref()) {
            Some((topic, receiver)) => {
                let id = request.stamp(
                    s.client.name(),
                    receiver,
                    plastic_proto::unix_seconds(std::time::SystemTime::now()),
                );
                s.client
                    .publish(topic, request.to_bytes(), rumqttc::QoS::AtLeastOnce, false)
                    .await?;
                if !s.json {
                    println!("sent {id} to {receiver}");
                }
            }
            None => {
                for node in &resolved.nodes {
                    let id = s.client.send(node, request.clone()).await?;
                    if !s.json {
                        println!("sent {id} to {node}");
                    }
                }
            }
        }
        return Ok(if resolved.unreachable.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    request_raw(s, target, request, Render::Value, false).await
}
