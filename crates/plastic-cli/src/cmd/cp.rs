//! `plastic cp LOCAL TARGET:PATH`: chunked, sha256-checked uploads, in parallel per node.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use plastic_client::ClientError;
use plastic_proto::file::{chunk_messages, MAX_FILE_SIZE};
use plastic_proto::{RelPath, Reply, Request};
use tokio::task::JoinSet;

use crate::args::Global;
use crate::output::{Printer, Render};
use crate::session::Session;
use crate::target::{resolve, TargetSpec};

/// Raw bytes per chunk at most: base64 grows data by 4/3 and a message is at most 256 KiB.
const MAX_CHUNK: usize = 128 * 1024;
const DEFAULT_CHUNK: usize = 16 * 1024;
const MIN_CHUNK: usize = 256;
/// Bytes of a chunk message that are not content: field names, file name, hash, envelope.
const ENVELOPE_ROOM: u64 = 600;

pub async fn run(
    global: &Global,
    local: &Path,
    destination: &str,
    chunk_size: Option<usize>,
) -> Result<ExitCode> {
    // Paths cannot contain `:`, targets can (`group:lab`): split at the last one.
    let Some((target, path)) = destination.rsplit_once(':') else {
        bail!("DESTINATION must be TARGET:PATH, for example pi-1:functions.py");
    };
    let path = if path.is_empty() {
        local
            .file_name()
            .and_then(|n| n.to_str())
            .context("LOCAL has no file name")?
    } else {
        path
    };
    let path = RelPath::parse(path)?;
    if chunk_size.is_some_and(|c| !(1..=MAX_CHUNK).contains(&c)) {
        bail!("--chunk-size must be from 1 to {MAX_CHUNK} bytes");
    }
    let data = std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        bail!(
            "{} is {} bytes; nodes accept files up to {MAX_FILE_SIZE} bytes",
            local.display(),
            data.len()
        );
    }
    let spec = TargetSpec::parse(target)?;
    let s = Session::open(global).await?;
    let resolved = resolve(&s.client, &spec, s.timeout).await?;
    let printer = Printer {
        json: s.json,
        multi: spec.is_multi(),
    };
    let mut all_ok = resolved.unreachable.is_empty();
    for (node, why) in &resolved.unreachable {
        printer.failure(node, "NodeNotOnline", why);
    }
    // A node that announces a smaller `max_payload` (a board) gets chunks that fit it: base64
    // is 4/3 of the raw size, and the envelope needs room too.
    let chunks_for = |node: &plastic_proto::NodeName| {
        let fit = s
            .client
            .presence_of(node.as_str())
            .and_then(|p| p.max_payload)
            .map(|max| {
                (max.saturating_sub(ENVELOPE_ROOM) as usize * 3 / 4).clamp(MIN_CHUNK, MAX_CHUNK)
            });
        let size = match (chunk_size, fit) {
            (Some(asked), Some(fit)) => asked.min(fit),
            (Some(asked), None) => asked,
            (None, Some(fit)) => fit.min(DEFAULT_CHUNK),
            (None, None) => DEFAULT_CHUNK,
        };
        chunk_messages(&path, &data, size)
    };
    let total = (data.len() * resolved.nodes.len()) as u64;
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::new(total.max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} -> {}", local.display(), path.as_str()));
    let ttl = s.ttl;
    let with_ttl = move |mut r: Request| {
        if let Some(ttl) = ttl {
            r.fields.insert("ttl".into(), ttl.into());
        }
        r
    };
    let mut set = JoinSet::new();
    for node in resolved.nodes.clone() {
        let client = s.client.clone();
        let chunks = chunks_for(&node);
        let timeout = s.timeout;
        let bar = bar.clone();
        set.spawn(async move {
            let mut last: Result<Reply, ClientError> = Err(ClientError::Closed);
            for chunk in chunks {
                let len = chunk_len(&chunk);
                last = client
                    .request(&node, with_ttl(Request::new(chunk)), timeout)
                    .await;
                match &last {
                    Ok(r) if r.ok => bar.inc(len),
                    _ => break,
                }
            }
            (node.to_string(), last)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined?);
    }
    bar.finish_and_clear();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let render = Render::With(|v| {
        let sha = v["sha256"].as_str().unwrap_or("");
        format!(
            "{}: {} bytes, sha256 {} verified",
            v["filename"].as_str().unwrap_or("?"),
            v["total"],
            &sha[..sha.len().min(16)]
        )
    });
    for (node, outcome) in &outcomes {
        all_ok &= printer.outcome(node, outcome, render);
    }
    s.close().await;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn chunk_len(chunk: &serde_json::Map<String, serde_json::Value>) -> u64 {
    // Base64 of n bytes is 4 * ceil(n / 3) characters; close enough for a progress bar.
    chunk
        .get("content")
        .and_then(|c| c.as_str())
        .map(|c| c.len() as u64 * 3 / 4)
        .unwrap_or(0)
}
