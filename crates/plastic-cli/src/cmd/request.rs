//! Sending one request to a TARGET and printing every node's reply.

use std::process::ExitCode;

use anyhow::Result;
use plastic_client::ClientError;
use plastic_proto::command::Abort;
use plastic_proto::{NodeName, Operation, Reply, Request};
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
    // Ids are chosen here, not when the requests are sent, so that Ctrl-C can name them: one
    // for a broadcast (one publish), one per node otherwise (the client tells replies apart
    // by id, and a message id is unique).
    let given = request
        .fields
        .get("message_id")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let one_id = resolved.broadcast.is_some() || resolved.pool.is_some();
    let ids: Vec<(NodeName, String)> = match (one_id, given) {
        (true, given) => {
            let id = given.unwrap_or_else(plastic_proto::new_message_id);
            resolved
                .nodes
                .iter()
                .map(|n| (n.clone(), id.clone()))
                .collect()
        }
        (false, Some(id)) if resolved.nodes.len() == 1 => {
            vec![(resolved.nodes[0].clone(), id)]
        }
        (false, _) => resolved
            .nodes
            .iter()
            .map(|n| (n.clone(), plastic_proto::new_message_id()))
            .collect(),
    };
    let outcomes = tokio::select! {
        outcomes = dispatch(s, &resolved, request, &ids, bar.as_ref()) => outcomes?,
        _ = tokio::signal::ctrl_c() => {
            if let Some(bar) = bar {
                bar.abandon();
            }
            return interrupt_and_leave(s, &ids).await;
        }
    };
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

/// Ctrl-C while waiting: asks every targeted node (for a pool, every online member) to abort
/// this request (`abort`: KeyboardInterrupt in a running eval/exec/function, a queued one
/// never runs, and one not delivered yet, as to a busy board, is refused when it arrives),
/// then leaves with 130, as a shell does for SIGINT. We do not wait for answers.
async fn interrupt_and_leave(s: &Session, ids: &[(NodeName, String)]) -> Result<ExitCode> {
    for (node, id) in ids {
        let abort = Abort { id: id.clone() }.to_request();
        if let Err(e) = s.client.send(node, abort).await {
            eprintln!("{node}: could not send the abort: {e}");
        }
    }
    eprintln!("interrupted");
    Ok(ExitCode::from(130))
}

/// Sends `request` to every resolved node (one broadcast publish, or one request each) with
/// the message ids in `ids`, and returns the outcomes sorted by node name.
pub async fn dispatch(
    s: &Session,
    resolved: &Resolved,
    mut request: Request,
    ids: &[(NodeName, String)],
    bar: Option<&indicatif::ProgressBar>,
) -> Result<Vec<(String, Result<Reply, ClientError>)>> {
    let mut outcomes = if let Some(pool) = &resolved.pool {
        let Some((_, id)) = ids.first() else {
            return Ok(vec![]);
        };
        request
            .fields
            .insert("message_id".into(), id.as_str().into());
        vec![s.client.request_pool(pool, request, s.timeout).await?]
    } else if let Some((topic, receiver)) = &resolved.broadcast {
        let Some((_, id)) = ids.first() else {
            return Ok(vec![]);
        };
        request
            .fields
            .insert("message_id".into(), id.as_str().into());
        s.client
            .request_many(topic, receiver, request, &resolved.nodes, s.timeout)
            .await?
    } else {
        let mut set = JoinSet::new();
        for (node, id) in ids.iter().cloned() {
            let client = s.client.clone();
            let mut request = request.clone();
            request.fields.insert("message_id".into(), id.into());
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
