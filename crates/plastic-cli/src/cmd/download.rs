//! `plastic cp NODE:PATH FILE` and `plastic fs NODE cat PATH`: downloads from one node, in
//! `read file` chunks checked against the node's sha256 (the protocol is `Client::download`'s).
//!
//! `cp` writes into `FILE.part` and renames it into place only after the hash matched, so a
//! failed download never leaves a half file under the real name; a `.part` left by a download
//! that was cut is resumed from its length (`Client::download_to_file`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use plastic_client::{DownloadError, Downloaded};
use plastic_proto::{NodeName, RelPath};

use crate::output::Printer;
use crate::session::Session;
use crate::target::one_node;

/// `plastic cp NODE:PATH LOCAL`.
pub async fn to_file(
    s: &Session,
    source: &str,
    local: &Path,
    chunk: Option<usize>,
) -> Result<ExitCode> {
    let Some((target, path)) = source.rsplit_once(':') else {
        bail!("SOURCE must be NODE:PATH, for example pi-1:data.csv");
    };
    let path = RelPath::parse(path)?;
    let dest: PathBuf = if local.is_dir() {
        local.join(path.as_str().rsplit('/').next().unwrap_or(path.as_str()))
    } else {
        local.to_path_buf()
    };
    let node = one_node(&s.client, target, "download from", s.timeout).await?;
    let printer = Printer {
        json: s.json,
        multi: false,
    };
    let outcome = s
        .client
        .download_to_file(&node, &path, &dest, chunk.map(|c| c as u64), s.timeout)
        .await;
    match outcome {
        Ok(done) => {
            report(&printer, &node, &path, &dest, &done);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&printer, &node, e)),
    }
}

fn report(printer: &Printer, node: &NodeName, path: &RelPath, dest: &Path, done: &Downloaded) {
    let sha = &done.sha256[..16];
    let resumed = if done.resumed_at > 0 {
        format!(" (resumed at byte {})", done.resumed_at)
    } else {
        String::new()
    };
    if printer.json {
        println!(
            "{}",
            serde_json::json!({"node": node.as_str(), "ok": true, "result": {
                "filename": path.as_str(), "saved": dest.display().to_string(),
                "size": done.size, "sha256": done.sha256, "resumed_at": done.resumed_at}})
        );
    } else {
        println!(
            "{}: {} bytes, sha256 {sha} verified -> {}{resumed}",
            path.as_str(),
            done.size,
            crate::output::shown(&dest.display().to_string())
        );
    }
}

fn failed(printer: &Printer, node: &NodeName, e: DownloadError) -> ExitCode {
    match e {
        // The node's own refusal prints as any error reply (kind, message, traceback).
        DownloadError::Refused(reply) => {
            printer.outcome(node.as_str(), &Ok(*reply), &crate::output::Render::Value);
        }
        DownloadError::Client(e) => {
            printer.outcome(node.as_str(), &Err(e), &crate::output::Render::Value);
        }
        e => printer.failure(node.as_str(), e.kind(), &e.to_string()),
    }
    ExitCode::from(crate::exit::FAILED)
}

/// `plastic fs NODE cat PATH`: the file's bytes on stdout, as they arrive.
pub async fn cat(s: &Session, target: &str, path: &str) -> Result<ExitCode> {
    let path = RelPath::parse(path)?;
    let node = one_node(&s.client, target, "download from", s.timeout).await?;
    let printer = Printer {
        json: false,
        multi: false,
    };
    let mut out = std::io::stdout();
    let mut sink = |bytes: &[u8]| out.write_all(bytes);
    let outcome = s
        .client
        .download(&node, &path, &[], None, s.timeout, &mut sink)
        .await;
    let _ = out.flush();
    match outcome {
        Ok(_) => Ok(ExitCode::SUCCESS),
        // A closed stdout (`| head`) ends quietly, like every command.
        Err(DownloadError::Local(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(failed(&printer, &node, e)),
    }
}
