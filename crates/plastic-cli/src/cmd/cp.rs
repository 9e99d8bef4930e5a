//! `plastic cp LOCAL TARGET:PATH`: chunked, sha256-checked uploads, in parallel per node.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use plastic_client::{UploadError, UploadEvent, UploadFile, UploadOptions, MAX_CHUNK};
use plastic_proto::file::MAX_FILE_SIZE;
use plastic_proto::RelPath;
use tokio::task::JoinSet;

use crate::global::Global;
use crate::output::{Printer, Render};
use crate::session::Session;
use crate::target::{resolve, TargetSpec};

pub async fn run(
    global: &Global,
    local: &Path,
    destination: &str,
    chunk_size: Option<usize>,
    recursive: bool,
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
    let files = if recursive {
        folder_files(local, &path)?
    } else {
        if local.is_dir() {
            bail!("{} is a folder: copy it with -r", local.display());
        }
        vec![(local.to_path_buf(), path)]
    };
    let spec = TargetSpec::parse(target)?;
    let s = Session::open(global).await?;
    let resolved = resolve(&s.client, &spec, s.timeout).await?;
    let printer = Printer {
        json: s.json,
        multi: spec.is_multi() || files.len() > 1,
    };
    let mut all_ok = resolved.unreachable.is_empty();
    for (node, why) in &resolved.unreachable {
        printer.failure(node, "NodeNotOnline", why);
    }
    for (local, path) in files {
        all_ok &= upload_one(&s, &resolved, &printer, &local, path, chunk_size).await?;
    }
    s.close().await;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The regular files under `dir`, each with its path under `under` on the node, sorted.
/// Symbolic links are skipped, not followed (a link to `/etc` must not upload `/etc`), and so
/// are names a node path cannot hold (hidden files, other characters): each is named on
/// stderr.
fn folder_files(dir: &Path, under: &RelPath) -> Result<Vec<(std::path::PathBuf, RelPath)>> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), under.as_str().to_owned())];
    while let Some((folder, prefix)) = todo.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot read {}", folder.display()))?;
        for entry in entries {
            let entry = entry?;
            let local = entry.path();
            let kind = entry.file_type()?;
            let name = entry.file_name();
            let remote = name
                .to_str()
                .map(|n| format!("{prefix}/{n}"))
                .and_then(|r| RelPath::parse(&r).ok());
            let shown = crate::output::shown(&local.display().to_string()).into_owned();
            match (remote, kind) {
                (_, k) if k.is_symlink() => eprintln!("skipped {shown}: a symbolic link"),
                (None, _) => eprintln!("skipped {shown}: not a name a node path can hold"),
                (Some(r), k) if k.is_dir() => todo.push((local, r.as_str().to_owned())),
                (Some(_), k) if k.is_file() && entry.metadata()?.len() > MAX_FILE_SIZE => {
                    eprintln!("skipped {shown}: over {MAX_FILE_SIZE} bytes, the most a node takes")
                }
                (Some(r), k) if k.is_file() => out.push((local, r)),
                _ => eprintln!("skipped {shown}: not a regular file"),
            }
        }
    }
    out.sort_by(|a, b| a.1.as_str().cmp(b.1.as_str()));
    Ok(out)
}

/// Uploads one file to every resolved node, printing each node's outcome; false when one
/// failed.
async fn upload_one(
    s: &Session,
    resolved: &crate::target::Resolved,
    printer: &Printer,
    local: &Path,
    path: RelPath,
    chunk_size: Option<usize>,
) -> Result<bool> {
    let data = std::fs::read(local).with_context(|| format!("cannot read {}", local.display()))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        bail!(
            "{} is {} bytes; nodes accept files up to {MAX_FILE_SIZE} bytes",
            local.display(),
            data.len()
        );
    }
    let mut all_ok = true;
    // Hidden automatically when stderr is not a terminal.
    let bar = ProgressBar::new(((data.len() * resolved.nodes.len()) as u64).max(1));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("{} -> {}", local.display(), path.as_str()));
    // The protocol (resume, chunk sizes, retries, sha256 check) is `Client::upload`'s.
    let file = UploadFile::new(path, data)?;
    let mut set = JoinSet::new();
    for node in resolved.nodes.clone() {
        let client = s.client.clone();
        let file = file.clone();
        let bar = bar.clone();
        let quiet = s.json;
        let name = node.to_string();
        let mut options = UploadOptions::new(s.timeout);
        options.chunk_size = chunk_size;
        options.ttl = s.ttl;
        options.progress = Some(std::sync::Arc::new(
            move |event: &UploadEvent| match event {
                UploadEvent::Resumed {
                    at,
                    total,
                    initial: true,
                } => {
                    if !quiet {
                        bar.suspend(|| eprintln!("{name}: resuming at byte {at} of {total}"));
                    }
                    bar.inc(*at);
                }
                UploadEvent::Acked { bytes, .. } => bar.inc(*bytes),
                _ => {}
            },
        ));
        set.spawn(async move {
            let outcome = client.upload(&node, &file, &options).await;
            (node.to_string(), outcome)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined?);
    }
    bar.finish_and_clear();
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    let render = Render::typed(|r: plastic_proto::command::ChunkReply| {
        let sha = r.sha256.unwrap_or_default();
        format!(
            "{}: {} bytes, sha256 {} verified",
            r.filename,
            r.total,
            &sha[..sha.len().min(16)]
        )
    });
    for (node, outcome) in outcomes {
        all_ok &= match outcome {
            Ok(done) => printer.outcome(&node, &Ok(done.reply), &render),
            // The node's own refusal prints as any error reply (kind, message, traceback).
            Err(UploadError::Refused(reply)) => printer.outcome(&node, &Ok(*reply), &render),
            Err(UploadError::Client(e)) => printer.outcome(&node, &Err(e), &render),
            Err(e) => {
                printer.failure(&node, e.kind(), &e.to_string());
                false
            }
        };
    }
    Ok(all_ok)
}
