//! `plastic ls`: the fleet as a table (or JSON lines).

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Result;
use plastic_proto::unix_seconds;

use crate::global::Global;
use crate::output::shown;
use crate::session::Session;

pub async fn run(global: &Global) -> Result<ExitCode> {
    let s = Session::open(global).await?;
    let nodes = s.client.nodes(s.timeout).await?;
    s.close().await;
    if global.json {
        for n in &nodes {
            println!("{}", serde_json::to_string(n)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = unix_seconds(SystemTime::now());
    let rows: Vec<[String; 6]> = nodes
        .iter()
        .map(|n| {
            // Every field but the age is the node's own text: shown escaped.
            [
                n.name.clone(),
                n.state.as_str().to_owned(),
                n.platform.clone(),
                n.address.clone().unwrap_or_else(|| "-".into()),
                // Groups, then pools as `pool:NAME`, the way a TARGET names them.
                {
                    let mut cell: Vec<String> = n.groups.clone();
                    cell.extend(n.pools.iter().map(|p| format!("pool:{p}")));
                    if cell.is_empty() {
                        "-".into()
                    } else {
                        cell.join(",")
                    }
                },
                ago(now - n.since),
            ]
            .map(|cell| shown(&cell).into_owned())
        })
        .collect();
    print_table(
        &["NAME", "STATE", "PLATFORM", "ADDRESS", "GROUPS", "SINCE"],
        &rows,
    );
    if nodes.is_empty() {
        eprintln!("no nodes have announced themselves on {}", s_broker(global));
    }
    Ok(ExitCode::SUCCESS)
}

fn s_broker(global: &Global) -> String {
    plastic_client::BrokerUrl::parse_list(&global.broker)
        .map(|b| plastic_client::brokers_to_string(&b))
        .unwrap_or_default()
}

pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_naturally() {
        assert_eq!(super::ago(5.2), "5s ago");
        assert_eq!(super::ago(125.0), "2m ago");
        assert_eq!(super::ago(7200.0), "2h ago");
        assert_eq!(super::ago(-3.0), "0s ago");
    }
}
