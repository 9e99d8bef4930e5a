//! `plastic logs NODE [-n N] [--since AGE] [-f]`: a node's recent log lines and events, as the
//! hub keeps them (the retained `<prefix>/<node>/log/recent`, see plastic-hub's `tails.rs`),
//! then, with `-f`, the new ones as they come.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Result};
use clap::Args;
use plastic_proto::{NodeName, TopicKind};
use serde_json::Value;

use crate::global::Global;
use crate::session::Session;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic logs pi-1                # the last 20 lines the hub kept\n  plastic logs pi-1 -n 100 --since 10m\n  plastic logs pi-1 -f             # and follow (Ctrl-C stops)"
)]
pub struct LogsArgs {
    /// The node (one name)
    pub node: String,
    /// How many of the kept lines to show (the hub keeps the last 100 of each node)
    #[arg(short = 'n', long, default_value = "20")]
    pub lines: usize,
    /// Only lines newer than this: seconds, or with a unit (90s, 10m, 2h, 1d)
    #[arg(long)]
    pub since: Option<String>,
    /// Keep printing new lines as they come (Ctrl-C stops)
    #[arg(short = 'f', long)]
    pub follow: bool,
}

/// Seconds in `10m`, `90s`, `2h`, `1d` or a plain number.
fn age(text: &str) -> Result<f64> {
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let scale = match unit {
        's' => 1.0,
        'm' => 60.0,
        'h' => 3600.0,
        'd' => 86400.0,
        _ => bail!("--since takes seconds or a number with s, m, h or d (10m), not `{text}`"),
    };
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n * scale),
        _ => bail!("--since takes seconds or a number with s, m, h or d (10m), not `{text}`"),
    }
}

pub async fn run(global: &Global, args: LogsArgs) -> Result<ExitCode> {
    let node = NodeName::parse(&args.node)?;
    let since = match &args.since {
        Some(text) => Some(unix_now() - age(text)?),
        None => None,
    };
    let (s, mut deliveries) = Session::open_listening(global).await?;
    let topics = s.client.topics().clone();
    if args.follow {
        // Live log lines first. Lines of the last second before this subscription are in
        // neither the live stream nor the tail yet: the tail's next update (at most a second
        // later) brings them, and every line is printed once (`Printed`). Events come through
        // the tail only (the hub stamps them; a live copy would carry another time).
        s.client.subscribe(&topics.log(&node)).await?;
    }
    s.client
        .subscribe(&topics.log_recent(node.as_str()))
        .await?;
    // The retained tail, if the broker has one, arrives before this round trip ends.
    s.client.sync(s.timeout).await?;
    let mut tail: Vec<Value> = Vec::new();
    let mut live: Vec<Value> = Vec::new();
    while let Ok(d) = deliveries.try_recv() {
        match d.kind {
            Some(TopicKind::LogRecent(_)) => {
                tail = serde_json::from_slice(&d.payload).unwrap_or_default();
            }
            Some(TopicKind::Log(_)) => live.push(line_of(&d)),
            _ => {}
        }
    }
    let newer = |line: &Value| since.is_none_or(|t| line["time"].as_f64().unwrap_or(0.0) >= t);
    let kept: Vec<&Value> = tail.iter().filter(|l| newer(l)).collect();
    let skip = kept.len().saturating_sub(args.lines);
    let mut printed = Printed::default();
    for line in &kept[..skip] {
        printed.seen(line); // not shown, but not news when the tail comes again
    }
    for line in &kept[skip..] {
        printed.show(line, s.json);
    }
    if tail.is_empty() && !args.follow {
        eprintln!(
            "no recent log of {node} on this broker (a `plastic hub` keeps the last 100 lines of each node; none yet, or no hub)"
        );
    }
    if args.follow {
        for line in &live {
            printed.show(line, s.json);
        }
        // On stderr, so the lines stay clean; scripts and tests wait for it.
        eprintln!("following {node} (Ctrl-C stops)");
        let shutdown = super::node::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                d = deliveries.recv() => {
                    let Some(d) = d else { break };
                    match d.kind {
                        Some(TopicKind::LogRecent(_)) => {
                            let tail: Vec<Value> = serde_json::from_slice(&d.payload).unwrap_or_default();
                            for line in &tail {
                                printed.show(line, s.json);
                            }
                        }
                        Some(TopicKind::Log(_)) => printed.show(&line_of(&d), s.json),
                        _ => {}
                    }
                }
            }
        }
    }
    s.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The lines printed so far (by time, source and text), so a line that comes both live and
/// in a tail is printed once. Bounded: the oldest keys go first.
#[derive(Default)]
struct Printed {
    keys: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Printed {
    const KEEP: usize = 4096;

    fn seen(&mut self, line: &Value) -> bool {
        let key = format!("{}|{}|{}", line["time"], line["source"], line["text"]);
        if !self.keys.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > Self::KEEP {
            if let Some(old) = self.order.pop_front() {
                self.keys.remove(&old);
            }
        }
        true
    }

    fn show(&mut self, line: &Value, json: bool) {
        if self.seen(line) {
            print_line(line, json);
        }
    }
}

/// A live log delivery as a line (a payload that is not JSON shows as its text).
fn line_of(d: &plastic_client::Delivery) -> Value {
    serde_json::from_slice(&d.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&d.payload).into_owned()))
}

fn print_line(line: &Value, json: bool) {
    if json {
        println!("{line}");
        return;
    }
    let time = line["time"].as_f64().unwrap_or(0.0);
    let secs = (time.max(0.0) as u64) % 86_400;
    let text = line["text"].as_str().unwrap_or_default();
    println!(
        "{:02}:{:02}:{:02} [{}] {}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        crate::output::shown(line["source"].as_str().unwrap_or("?")),
        crate::output::shown_text(text)
    );
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_units() {
        assert_eq!(age("90").unwrap(), 90.0);
        assert_eq!(age("90s").unwrap(), 90.0);
        assert_eq!(age("10m").unwrap(), 600.0);
        assert_eq!(age("2h").unwrap(), 7200.0);
        assert_eq!(age("1d").unwrap(), 86400.0);
        for bad in ["", "m", "-5m", "10y", "abc", "inf"] {
            assert!(age(bad).is_err(), "{bad}");
        }
    }
}
