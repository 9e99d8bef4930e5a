//! `plastic history`: what the hub recorded (requests, outcomes, presence, refusals), read
//! from its history database on this machine (`plastic_hub::history`; the hub keeps writing
//! while this reads). Over the network, the same query is `GET /api/v1/history`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use plastic_hub::history::{self, unix_now, Query};

use crate::output::shown;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic history --node esp-1 --since 1h --failed\n  plastic history --user alice --limit 20\n  plastic history --kind refusal --json"
)]
pub struct HistoryArgs {
    /// Rows about this node
    #[arg(long)]
    pub node: Option<String>,
    /// Requests this user sent (and their outcomes)
    #[arg(long)]
    pub user: Option<String>,
    /// Only rows this recent: 30s, 10m, 1h, 7d
    #[arg(long, value_parser = super::hub::parse_duration)]
    pub since: Option<Duration>,
    /// Only failed outcomes (error replies)
    #[arg(long)]
    pub failed: bool,
    /// Only rows of this kind: request, outcome, presence, refusal
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many rows, newest first
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// The history database (default: $PLASTIC_HOME/history.db)
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: HistoryArgs) -> Result<ExitCode> {
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| crate::session::plastic_home().join("history.db"));
    if !path.exists() {
        anyhow::bail!(
            "no history at {} (the hub writes it there; is it running on this machine?)",
            path.display()
        );
    }
    let q = Query {
        node: args.node,
        user: args.user,
        since: args.since.map(|d| unix_now() - d.as_secs_f64()),
        failed: args.failed,
        kind: args.kind,
        limit: Some(args.limit),
    };
    let rows = history::query(&path, &q)?;
    for row in rows.iter().rev() {
        if args.json {
            println!("{}", serde_json::to_string(row)?);
            continue;
        }
        let at = time_text(row.at);
        let opt = |s: &Option<String>| shown(s.as_deref().unwrap_or("-")).into_owned();
        let outcome = match row.ok {
            Some(true) => "ok".to_owned(),
            Some(false) => "FAILED".to_owned(),
            None => String::new(),
        };
        println!(
            "{at}  {:<8} {:<14} {:<16} {:<18} {outcome} {}",
            row.kind,
            opt(&row.node),
            opt(&row.user),
            opt(&row.r#type),
            shown(row.detail.as_deref().unwrap_or("")),
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// UTC, to the millisecond: `2026-12-02 04:10:33.120` (`-` for a time out of range).
fn time_text(at: f64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos((at * 1e9) as i128) else {
        return "-".to_owned();
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_utc() {
        assert_eq!(super::time_text(0.0), "1970-01-01 00:00:00.000");
        assert_eq!(super::time_text(1_796_180_461.5), "2026-12-02 03:01:01.500");
    }
}
