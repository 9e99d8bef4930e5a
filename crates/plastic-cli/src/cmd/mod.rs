//! One file per command family; each parses its arguments, calls the libraries and prints.

mod agent;
mod bench;
mod cp;
mod demo;
mod hub;
mod keys;
mod ls;
mod node;
mod request;
mod user;
mod watch;

use std::process::ExitCode;

use anyhow::Result;
use plastic_proto::Request;
use serde_json::{json, Map, Value};

use crate::args::{Cli, Command, GpioAction};
use crate::output::Render;
use crate::session::Session;
use request::request_each;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Hub {
            listen,
            external,
            insecure,
            users,
            tls_cert,
            tls_key,
        } => {
            let args = hub::HubArgs {
                listen,
                external: external || global.broker_given,
                insecure,
                users,
                tls: tls_cert.zip(tls_key),
            };
            hub::run(&global, args).await
        }
        Command::User { action } => user::run(action),
        Command::NodeKey { action } => keys::node_key(&global, action),
        Command::Certs { action } => keys::certs(action),
        Command::Node(args) => node::run_node(&global, args).await,
        Command::Sim {
            nodes,
            name_prefix,
            groups,
            root,
        } => node::run_sim(&global, nodes, &name_prefix, groups, root).await,
        Command::Demo => demo::run(&global).await,
        Command::Bench(args) => bench::run(&global, args).await,
        Command::Agent {
            action: crate::args::AgentAction::Bundle(args),
        } => agent::bundle(&global, &args),
        Command::Ls => ls::run(&global).await,
        Command::Watch { count } => watch::run(&global, count).await,
        Command::Cp {
            local,
            destination,
            chunk_size,
        } => cp::run(&global, &local, &destination, chunk_size).await,
        command => {
            let session = Session::open(&global).await?;
            let code = request_command(&session, command).await;
            session.close().await;
            code
        }
    }
}

async fn request_command(s: &Session, command: Command) -> Result<ExitCode> {
    match command {
        Command::Eval { target, code } => {
            request_each(s, &target, Request::eval(&code), Render::Value).await
        }
        Command::Exec { target, code } => {
            request_each(s, &target, Request::exec(&code), Render::Quiet).await
        }
        Command::Gpio {
            target,
            action: GpioAction::Read { pins },
        } => {
            let mut kwargs = Map::new();
            if !pins.is_empty() {
                kwargs.insert("pins".into(), json!(pins));
            }
            request_each(
                s,
                &target,
                Request::command("read GPIOs", kwargs),
                Render::Value,
            )
            .await
        }
        Command::Gpio {
            target,
            action: GpioAction::Write { assignments },
        } => {
            let pairs = assignments
                .iter()
                .map(|a| parse_assignment(a))
                .collect::<Result<Vec<_>>>()?;
            let kwargs = json!({"pins_and_values": pairs});
            request_each(
                s,
                &target,
                Request::command("write GPIOs", object(kwargs)),
                Render::Value,
            )
            .await
        }
        Command::Blink {
            target,
            times,
            forever,
            on,
            off,
        } => {
            let kwargs =
                json!({"times": times, "forever": forever, "on_seconds": on, "off_seconds": off});
            let render = Render::With(|v| {
                if v["forever"] == true {
                    "blinking until `plastic stop`".into()
                } else {
                    format!("blinking {} times", v["times"])
                }
            });
            request_each(
                s,
                &target,
                Request::command("blink led", object(kwargs)),
                render,
            )
            .await
        }
        Command::Run {
            target,
            script,
            name,
        } => {
            let source = std::fs::read_to_string(&script)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", script.display()))?;
            let name = match name {
                Some(n) => n,
                None => script_name(&script),
            };
            plastic_proto::name::validate_name(&name)?;
            let render =
                Render::With(|v| format!("script `{}` started", v["name"].as_str().unwrap_or("?")));
            request::request_each_with(s, &target, Request::script(&source, &name), render, true)
                .await
        }
        Command::Stop { target, name } => {
            let mut kwargs = Map::new();
            if let Some(n) = name {
                kwargs.insert("name".into(), n.into());
            }
            let render = Render::With(|v| {
                let names = |k: &str| {
                    v[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_default()
                };
                let mut text = match names("stopped") {
                    n if n.is_empty() => "no script was running".to_owned(),
                    n => format!("stopped: {n}"),
                };
                if v["blink_stopped"] == true {
                    text.push_str("; blink stopped");
                }
                let still = names("still_running");
                if !still.is_empty() {
                    text.push_str(&format!("; still running (no stop point reached): {still}"));
                }
                text
            });
            request_each(s, &target, Request::command("stop", kwargs), render).await
        }
        Command::Call {
            target,
            function,
            args,
        } => {
            let (args, kwargs) = match args
                .as_deref()
                .map(serde_json::from_str::<Value>)
                .transpose()
            {
                Err(e) => anyhow::bail!("ARGS must be JSON: {e}"),
                Ok(None) => (vec![], Map::new()),
                Ok(Some(Value::Object(kw))) => (vec![], kw),
                Ok(Some(Value::Array(a))) => (a, Map::new()),
                Ok(Some(other)) => (vec![other], Map::new()),
            };
            request_each(
                s,
                &target,
                Request::function(&function, args, kwargs),
                Render::Value,
            )
            .await
        }
        Command::Send {
            target,
            message,
            no_wait,
        } => {
            let fields = match serde_json::from_str::<Value>(&message) {
                Ok(Value::Object(m)) => m,
                Ok(_) => anyhow::bail!("MESSAGE must be a JSON object"),
                Err(e) => anyhow::bail!("MESSAGE is not valid JSON: {e}"),
            };
            request::send_raw(s, &target, Request::new(fields), no_wait).await
        }
        Command::Ping { target } => {
            request_each(
                s,
                &target,
                Request::command("ping", Map::new()),
                Render::Value,
            )
            .await
        }
        Command::Info { target } => {
            request_each(
                s,
                &target,
                Request::command("info", Map::new()),
                Render::Value,
            )
            .await
        }
        _ => unreachable!("handled in run"),
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `2=0` to `[2, 0]`.
fn parse_assignment(text: &str) -> Result<[u32; 2]> {
    let bad = || anyhow::anyhow!("`{text}` is not PIN=VALUE with VALUE 0 or 1");
    let (pin, value) = text.split_once('=').ok_or_else(bad)?;
    let pin: u32 = pin.trim().parse().map_err(|_| bad())?;
    let value: u32 = value.trim().parse().map_err(|_| bad())?;
    if value > 1 {
        return Err(bad());
    }
    Ok([pin, value])
}

/// A script's default name: its file stem, if that is a valid name.
fn script_name(path: &std::path::Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| plastic_proto::name::validate_name(s).is_ok())
        .unwrap_or(plastic_proto::message::DEFAULT_SCRIPT_NAME)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_parse_and_refuse_bad_values() {
        assert_eq!(parse_assignment("2=0").unwrap(), [2, 0]);
        assert!(parse_assignment("2=5").is_err());
        assert!(parse_assignment("x=1").is_err());
        assert!(parse_assignment("21").is_err());
    }

    #[test]
    fn script_names_come_from_the_file_stem() {
        assert_eq!(
            script_name(std::path::Path::new("dir/script_to_deploy.py")),
            "script_to_deploy"
        );
        assert_eq!(script_name(std::path::Path::new("my script.py")), "main");
    }
}
