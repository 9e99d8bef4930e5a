//! `plastic cp LOCAL TARGET:PATH`: chunked, sha256-checked uploads, in parallel per node.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use plastic_proto::file::{chunk_at, resume_question, sha256_hex, MAX_FILE_SIZE};
use plastic_proto::{RelPath, Request};
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
/// Times an upload asks the node where it stands and carries on after a failed chunk.
const RESUMES: u32 = 5;

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
    let first_chunk_size = |node: &plastic_proto::NodeName| {
        let fit = s
            .client
            .presence_of(node.as_str())
            .and_then(|p| p.max_payload)
            .map(|max| {
                (max.saturating_sub(ENVELOPE_ROOM) as usize * 3 / 4).clamp(MIN_CHUNK, MAX_CHUNK)
            });
        match (chunk_size, fit) {
            (Some(asked), Some(fit)) => asked.min(fit),
            (Some(asked), None) => asked,
            (None, Some(fit)) => fit.min(DEFAULT_CHUNK),
            (None, None) => DEFAULT_CHUNK,
        }
    };
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::new(((data.len() * resolved.nodes.len()) as u64).max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} -> {}", local.display(), path.as_str()));
    let data = std::sync::Arc::new(data);
    let sha = std::sync::Arc::new(sha256_hex(&data));
    let ttl = s.ttl;
    let mut set = JoinSet::new();
    for node in resolved.nodes.clone() {
        let client = s.client.clone();
        let timeout = s.timeout;
        let bar = bar.clone();
        let (data, sha, path) = (data.clone(), sha.clone(), path.clone());
        let mut size = first_chunk_size(&node);
        let printer_json = s.json;
        set.spawn(async move {
            // Where does the node stand? An upload cut earlier (a dropped link, this command
            // killed) continues from the bytes the node already has.
            let ask = |client: plastic_client::Client, node: plastic_proto::NodeName| {
                let question = Request::new(resume_question(&path, data.len() as u64, &sha));
                async move {
                    match client.request(&node, question, timeout).await {
                        Ok(r) if r.ok => r.result["received"].as_u64().map(|n| n as usize),
                        _ => None,
                    }
                }
            };
            let mut offset = 0usize;
            if !data.is_empty() {
                offset = ask(client.clone(), node.clone())
                    .await
                    .unwrap_or(0)
                    .min(data.len());
                if offset > 0 && !printer_json {
                    eprintln!("{node}: resuming at byte {offset} of {}", data.len());
                    bar.inc(offset as u64);
                }
            }
            let mut resumes = 0;
            loop {
                let mut chunk = Request::new(chunk_at(&path, &data, &sha, offset, size));
                if let Some(ttl) = ttl {
                    chunk.fields.insert("ttl".into(), ttl.into());
                }
                let sent = (data.len() - offset).min(size);
                let reply = client.request(&node, chunk, timeout).await;
                match &reply {
                    Ok(r) if r.ok && offset + sent >= data.len() => {
                        return (node.to_string(), reply)
                    }
                    Ok(r) if r.ok => {
                        offset += sent;
                        bar.inc(sent as u64);
                    }
                    // A board short of memory: the same offset again, in smaller pieces.
                    Ok(r)
                        if r.error
                            .as_ref()
                            .is_some_and(|e| e.kind == "PayloadTooLarge")
                            && size > MIN_CHUNK =>
                    {
                        size = (size / 2).max(MIN_CHUNK);
                    }
                    // No answer, or the node expected another offset (a chunk ran twice, the
                    // node restarted): ask where it stands and go on from there.
                    Ok(r)
                        if r.error.as_ref().is_some_and(|e| e.kind == "OutOfOrder")
                            && resumes < RESUMES =>
                    {
                        resumes += 1;
                        match ask(client.clone(), node.clone()).await {
                            Some(at) if at <= data.len() => offset = at,
                            _ => return (node.to_string(), reply),
                        }
                    }
                    Err(
                        plastic_client::ClientError::Timeout { .. }
                        | plastic_client::ClientError::NodeLost { .. },
                    ) if resumes < RESUMES => {
                        resumes += 1;
                        match ask(client.clone(), node.clone()).await {
                            Some(at) if at <= data.len() => offset = at,
                            _ => return (node.to_string(), reply),
                        }
                    }
                    _ => return (node.to_string(), reply),
                }
            }
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
