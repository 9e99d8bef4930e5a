//! The built-in commands: apply one [`Command`] to the node and produce its result.

use std::time::Duration;

use plastic_proto::{Command, ErrorInfo, PROTOCOL_VERSION};
use serde_json::{json, Value};

use crate::blink::BlinkPlan;
use crate::node::NodeShared;

/// What the dispatcher does after replying (only `reset` needs this).
#[derive(Debug, PartialEq)]
pub enum After {
    Nothing,
    Reset,
}

pub async fn apply(node: &NodeShared, command: Command) -> (Result<Value, ErrorInfo>, After) {
    let gpio = &node.gpio;
    let result = match command {
        Command::BlinkLed {
            times,
            forever,
            on_seconds,
            off_seconds,
        } => {
            let plan = BlinkPlan {
                times,
                forever,
                on: Duration::from_secs_f64(on_seconds),
                off: Duration::from_secs_f64(off_seconds),
            };
            node.blinker.start(gpio.clone(), plan);
            Ok(json!({"blinking": true, "times": times, "forever": forever}))
        }
        Command::ReadGpios { pins } => {
            let mut pins = pins.unwrap_or_else(|| gpio.pins());
            pins.sort_unstable();
            pins.dedup();
            pins.iter()
                .map(|&p| gpio.read(p).map(|v| json!([p, v])))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
                .map_err(|e| ErrorInfo::new("ValueError", e.to_string()))
        }
        Command::WriteGpios { pins_and_values } => {
            let mut touched: Vec<u32> = pins_and_values.iter().map(|(pin, _)| *pin).collect();
            touched.sort_unstable();
            touched.dedup();
            // Every pin is checked before the first write: a bad pin changes nothing.
            if let Some(bad) = touched.iter().find(|p| gpio.read(**p).is_err()) {
                let e = gpio.read(*bad).unwrap_err();
                return (
                    Err(ErrorInfo::new("ValueError", e.to_string())),
                    After::Nothing,
                );
            }
            pins_and_values
                .iter()
                .try_for_each(|(pin, value)| gpio.write(*pin, *value))
                .map_err(|e| ErrorInfo::new("ValueError", e.to_string()))
                .map(|()| {
                    Value::Array(
                        touched
                            .iter()
                            .map(|&p| json!([p, gpio.read(p).unwrap_or(0)]))
                            .collect(),
                    )
                })
        }
        Command::Ping => Ok(json!("pong")),
        Command::Info => Ok(json!({
            "name": node.name.as_str(),
            "platform": node.platform,
            "version": env!("CARGO_PKG_VERSION"),
            "protocol": PROTOCOL_VERSION,
            "uptime": node.started.elapsed().as_secs_f64(),
            "free_memory": free_memory(),
            "scripts": node.engine().running_scripts(),
            "blinking": node.blinker.is_running(),
            "groups": node.groups,
        })),
        Command::Stop { name } => {
            let engine = node.engine();
            if let Some(n) = &name {
                if !engine.running_scripts().contains(n) {
                    let missing =
                        ErrorInfo::new("NotFound", format!("no script named `{n}` is running"));
                    return (Err(missing), After::Nothing);
                }
            }
            let (stopped, still_running) = engine.stop_scripts(name.as_deref()).await;
            let blink = name.is_none() && node.blinker.stop(gpio.as_ref());
            Ok(json!({"stopped": stopped, "still_running": still_running, "blink_stopped": blink}))
        }
        Command::Reset => return (Ok(json!({"resetting": true})), After::Reset),
        Command::ListFiles => blocking(node, |files| files.list())
            .await
            .map(|files| Value::Array(files.into_iter().map(|(p, s)| json!([p, s])).collect()))
            .map_err(|e| ErrorInfo::new(e.kind(), e.to_string())),
        Command::RemoveFile { filename } => blocking(node, move |files| {
            files.remove(&filename).map(|()| filename)
        })
        .await
        .map(|filename| json!({"removed": filename.as_str()}))
        .map_err(|e| ErrorInfo::new(e.kind(), e.to_string())),
    };
    (result, After::Nothing)
}

/// Bytes of memory available to programs on this machine (Linux `MemAvailable`).
fn free_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs file-system work on tokio's blocking pool: the node's runtime has one thread, and a
/// slow disk must not stall its pings.
async fn blocking<T: Send + 'static>(
    node: &NodeShared,
    work: impl FnOnce(&crate::files::FileStore) -> Result<T, crate::files::FileError> + Send + 'static,
) -> Result<T, crate::files::FileError> {
    let files = node.files.clone();
    tokio::task::spawn_blocking(move || work(&files))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()))
}
