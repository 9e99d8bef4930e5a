//! Sending one request to a TARGET and printing every node's reply.

use std::process::ExitCode;

use anyhow::Result;
use plastic_client::ClientError;
use plastic_proto::{Operation, Reply, Request};
use tokio::task::JoinSet;

use crate::output::{Printer, Render};
use crate::session::Session;
use crate::target::{resolve, Resolved, TargetSpec};

/// Sends one typed operation to every node of TARGET and prints each node's outcome.
pub async fn request_each(
    s: &Session,
    target: &str,
    op: &impl Operation,
    render: Render,
) -> Result<ExitCode> {
    request_each_with(s, target, op, render, false).await
}

/// Like [`request_each`]; with `progress`, requests go to each node separately (no broadcast)
/// and a progress bar counts the replies on a terminal (deploys to many nodes).
pub async fn request_each_with(
    s: &Session,
    target: &str,
    op: &impl Operation,
    render: Render,
    progress: bool,
) -> Result<ExitCode> {
    request_raw(s, target, op.to_request(), render, progress).await
}

/// [`request_each_with`] for a request as written (`plastic send`).
pub async fn request_raw(
    s: &Session,
    target: &str,
    request: Request,
    render: Render,
    progress: bool,
) -> Result<ExitCode> {
    let request = s.with_ttl(request);
    let spec = TargetSpec::parse(target)?;
    let resolved = resolve(&s.client, &spec, s.timeout).await?;
    let printer = Printer {
        json: s.json,
        multi: spec.is_multi(),
    };
    let mut all_ok = true;
    for (node, why) in &resolved.unreachable {
        printer.failure(node, "NodeNotOnline", why);
        all_ok = false;
    }
    if resolved.nodes.is_empty() && resolved.unreachable.is_empty() {
        printer.failure(
            target,
            "NoTarget",
            &format!("no online node is targeted by `{target}`"),
        );
        return Ok(ExitCode::from(1));
    }
    let mut resolved = resolved;
    // A signed request is for one node (its receiver is signed), so nodes with keys get their
    // own copy instead of a broadcast.
    if resolved.broadcast.is_some() && s.client.signs_for_any(&resolved.nodes)? {
        resolved.broadcast = None;
    }
    let bar = if progress && resolved.nodes.len() > 1 {
        resolved.broadcast = None;
        let bar = indicatif::ProgressBar::new(resolved.nodes.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} nodes")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message("deploying");
        Some(bar)
    } else {
        None
    };
    let outcomes = dispatch(s, &resolved, request, bar.as_ref()).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for (node, outcome) in outcomes {
        all_ok &= printer.outcome(&node, &outcome, &render);
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Sends `request` to every resolved node (one broadcast publish, or one request each) and
/// returns the outcomes sorted by node name.
pub async fn dispatch(
    s: &Session,
    resolved: &Resolved,
    request: Request,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Vec<(String, Result<Reply, ClientError>)>> {
    let mut outcomes = if let Some((topic, receiver)) = &resolved.broadcast {
        if resolved.nodes.is_empty() {
            return Ok(vec![]);
        }
        s.client
            .request_many(topic, receiver, request, &resolved.nodes, s.timeout)
            .await?
    } else {
        let mut set = JoinSet::new();
        for node in resolved.nodes.clone() {
            let client = s.client.clone();
            let request = request.clone();
            let timeout = s.timeout;
            set.spawn(async move {
                (
                    node.to_string(),
                    client.request(&node, request, timeout).await,
                )
            });
        }
        let mut out = Vec::with_capacity(resolved.nodes.len());
        while let Some(joined) = set.join_next().await {
            out.push(joined?);
            if let Some(bar) = bar {
                bar.inc(1);
            }
        }
        out
    };
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(outcomes)
}
