//! `plastic run` and `plastic stop`: scripts that run on their own on the nodes.
//!
//! `run` listens to the targeted nodes' log topics before it sends the script, so it sees the
//! script's own lines (docs/protocol.md, "Log lines": output, then `finished` / `stopped` /
//! `crashed:` with the traceback): a crash in the first second is reported (exit 1) even
//! without `--follow`, and `--follow` prints the output until every script has ended.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use plastic_client::Delivery;
use plastic_proto::command::{Script, ScriptStarted, Stop, StopReply};
use plastic_proto::TopicKind;
use tokio::sync::mpsc::UnboundedReceiver;

use super::request::request_each_with;
use crate::global::Global;
use crate::output::{shown, shown_text, Render};
use crate::session::Session;
use crate::target::{resolve, TargetSpec};

/// How long `run` without `--follow` keeps listening for a crash after the script started.
const CRASH_WATCH: Duration = Duration::from_secs(1);
/// Targets up to this many nodes get one log subscription each; more get the fleet's filter.
const MAX_LOG_SUBSCRIPTIONS: usize = 16;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic run pi-1 examples/script_to_deploy.py   # the seed's blink-forever script\n  plastic run 'sim-*' sensor.py --name sensor"
)]
pub struct RunArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// The Python file to deploy (saved as NAME.py on the node and started)
    pub script: PathBuf,
    /// Script name (default: the file's stem)
    #[arg(long)]
    pub name: Option<String>,
    /// Print the script's output until it ends (exit 1 if it crashed); Ctrl-C stops following,
    /// not the script
    #[arg(long, short = 'f')]
    pub follow: bool,
}

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic stop pi-1                  # every script and the blink\n  plastic stop pi-1 --name sensor"
)]
pub struct StopArgs {
    /// Node name, comma list, glob ('sim-*'), group:NAME, pool:NAME or all
    pub target: String,
    /// Stop only this script (default: every script and the blink)
    #[arg(long)]
    pub name: Option<String>,
}

pub async fn run(global: &Global, args: RunArgs) -> Result<ExitCode> {
    let source = std::fs::read_to_string(&args.script)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.script.display()))?;
    let name = args
        .name
        .unwrap_or_else(|| Script::name_for_path(&args.script));
    plastic_proto::name::validate_name(&name)?;
    let (s, deliveries) = Session::open_listening(global).await?;
    let code = run_in(&s, deliveries, &args.target, source, name, args.follow).await;
    s.close().await;
    code
}

async fn run_in(
    s: &Session,
    mut deliveries: UnboundedReceiver<Delivery>,
    target: &str,
    source: String,
    name: String,
    follow: bool,
) -> Result<ExitCode> {
    // Listen first: a script can crash before its `run` reply reaches us.
    let spec = TargetSpec::parse(target)?;
    let nodes = resolve(&s.client, &spec, s.timeout).await?.nodes;
    if nodes.len() > MAX_LOG_SUBSCRIPTIONS {
        // One filter for the fleet rather than one per node: a hub caps subscriptions per
        // session (64 by default), and a refused one would hide that node's lines.
        s.client.subscribe(&s.client.topics().all_logs()).await?;
    } else {
        for node in &nodes {
            s.client.subscribe(&s.client.topics().log(node)).await?;
        }
    }
    let script = Script {
        script: source,
        name: name.clone(),
    };
    let render = Render::typed(|r: ScriptStarted| format!("script `{}` started", r.name));
    let mut presence = s.client.presence_events();
    let code = request_each_with(s, target, &script, render, true).await?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    let mut watch = ScriptWatch::new(&name, nodes.iter().map(|n| n.to_string()), follow);
    let deadline = tokio::time::sleep(CRASH_WATCH);
    tokio::pin!(deadline);
    let shutdown = super::node::shutdown_signal();
    tokio::pin!(shutdown);
    while !watch.all_ended() {
        tokio::select! {
            _ = &mut deadline, if !follow => break,
            _ = &mut shutdown, if follow => return Ok(ExitCode::from(130)),
            // A node that goes away ends its part: no end line will come from it.
            event = presence.recv() => {
                if let Ok(event) = event {
                    let p = event.current;
                    if p.state != plastic_proto::NodeState::Online {
                        if let Some(text) = watch.gone(&p.name, p.state.as_str()) {
                            eprintln!("{text}");
                        }
                    }
                }
            }
            delivery = deliveries.recv() => {
                let Some(d) = delivery else { break };
                let Some(TopicKind::Log(node)) = d.kind else { continue };
                let Ok(line) = serde_json::from_slice::<serde_json::Value>(&d.payload) else { continue };
                if let Some(out) = watch.line(node.as_str(), &line) {
                    match out {
                        Shown::Out(text) => println!("{text}"),
                        Shown::Err(text) => eprintln!("{text}"),
                    }
                }
            }
        }
    }
    Ok(if watch.crashed {
        ExitCode::from(crate::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Where a line of [`ScriptWatch`] goes.
#[derive(Debug, PartialEq)]
enum Shown {
    Out(String),
    Err(String),
}

/// The state of one deployed script on each node, fed with the nodes' log lines. Pure: the
/// loop in [`run_in`] does the I/O.
struct ScriptWatch {
    source: String,
    name: String,
    follow: bool,
    /// Node -> whether its new script has logged `started` (lines before are an older run's).
    started: BTreeMap<String, bool>,
    ended: BTreeMap<String, bool>,
    crashed: bool,
}

impl ScriptWatch {
    fn new(name: &str, nodes: impl Iterator<Item = String>, follow: bool) -> Self {
        let nodes: Vec<String> = nodes.collect();
        ScriptWatch {
            source: format!("script:{name}"),
            name: name.to_owned(),
            follow,
            started: nodes.iter().map(|n| (n.clone(), false)).collect(),
            ended: nodes.into_iter().map(|n| (n, false)).collect(),
            crashed: false,
        }
    }

    /// `node` went offline or lost: its script will say no more.
    fn gone(&mut self, node: &str, state: &str) -> Option<String> {
        let ended = self.ended.get_mut(node)?;
        if *ended {
            return None;
        }
        *ended = true;
        self.crashed = true;
        Some(format!(
            "{node}: the node went {state} before script `{}` ended",
            self.name
        ))
    }

    fn all_ended(&self) -> bool {
        self.ended.values().all(|e| *e)
    }

    /// Takes one log line of `node`; returns what to print.
    fn line(&mut self, node: &str, line: &serde_json::Value) -> Option<Shown> {
        if line["source"].as_str() != Some(self.source.as_str()) {
            return None;
        }
        let text = line["text"].as_str().unwrap_or_default();
        let started = self.started.get_mut(node)?;
        if !*started {
            // An older run of this name may still be saying goodbye (`stopped`).
            *started = text == "started";
            return None;
        }
        let multi = self.started.len() > 1;
        let prefix = if multi {
            format!("{node}: ")
        } else {
            String::new()
        };
        let ended = |this: &mut Self| {
            this.ended.insert(node.to_owned(), true);
        };
        if let Some(traceback) = text.strip_prefix("crashed:") {
            ended(self);
            self.crashed = true;
            return Some(Shown::Err(format!(
                "{prefix}script `{}` crashed:{}",
                self.name,
                shown_text(traceback)
            )));
        }
        match text {
            "finished" | "stopped" => {
                ended(self);
                self.follow
                    .then(|| Shown::Err(format!("{prefix}script `{}` {text}", self.name)))
            }
            _ if self.follow => Some(Shown::Out(format!("{prefix}{}", shown(text)))),
            _ => None,
        }
    }
}

pub async fn stop(s: &Session, args: StopArgs) -> Result<ExitCode> {
    let stop = Stop { name: args.name };
    let render = Render::typed(|r: StopReply| r.describe());
    request_each_with(s, &args.target, &stop, render, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn log(name: &str, text: &str) -> serde_json::Value {
        json!({"time": 1.0, "node": "n", "source": format!("script:{name}"), "level": "info", "text": text})
    }

    #[test]
    fn lines_before_started_belong_to_the_older_run() {
        let mut w = ScriptWatch::new("s", ["n".to_owned()].into_iter(), true);
        assert_eq!(w.line("n", &log("s", "old output")), None);
        assert_eq!(w.line("n", &log("s", "stopped")), None);
        assert!(!w.all_ended());
        assert_eq!(w.line("n", &log("s", "started")), None);
        assert_eq!(w.line("n", &log("s", "hi")), Some(Shown::Out("hi".into())));
        assert_eq!(w.line("n", &log("other", "x")), None);
        assert_eq!(w.line("m", &log("s", "x")), None, "a node not targeted");
        assert_eq!(
            w.line("n", &log("s", "finished")),
            Some(Shown::Err("script `s` finished".into()))
        );
        assert!(w.all_ended() && !w.crashed);
    }

    #[test]
    fn a_crash_is_reported_with_its_traceback_even_without_follow() {
        let nodes = ["a".to_owned(), "b".to_owned()];
        let mut w = ScriptWatch::new("s", nodes.into_iter(), false);
        w.line("a", &log("s", "started"));
        w.line("b", &log("s", "started"));
        assert_eq!(
            w.line("a", &log("s", "output")),
            None,
            "output only with --follow"
        );
        let crash = w.line(
            "a",
            &log("s", "crashed:\nTraceback...\nNameError: x\x1b[2J"),
        );
        assert_eq!(
            crash,
            Some(Shown::Err(
                "a: script `s` crashed:\nTraceback...\nNameError: x\\x1b[2J".into()
            ))
        );
        assert!(w.crashed && !w.all_ended());
        assert_eq!(w.line("b", &log("s", "finished")), None);
        assert!(w.all_ended());
    }

    #[test]
    fn a_node_that_goes_away_ends_its_part() {
        let mut w = ScriptWatch::new("s", ["a".to_owned()].into_iter(), true);
        assert_eq!(w.gone("x", "lost"), None, "not a node of this run");
        assert_eq!(
            w.gone("a", "lost").as_deref(),
            Some("a: the node went lost before script `s` ended")
        );
        assert!(w.all_ended() && w.crashed);
        assert_eq!(w.gone("a", "offline"), None, "said once");
    }
}
