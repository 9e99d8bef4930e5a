//! The built-in commands: apply one [`Command`] to the node and produce its result.
//!
//! They reach the node only through [`Facilities`]; replying is the outbox's job.

use std::time::Duration;

use plastic_proto::command::{
    AbortReply, AbortedWas, BlinkLed, BlinkReply, InfoReply, InterruptReply, ResetReply, StopReply,
    PONG,
};
use plastic_proto::{Command, ErrorInfo, PROTOCOL_VERSION};
use serde_json::{json, Value};

use crate::blink::BlinkPlan;
use crate::facilities::Facilities;
use crate::files::{FileError, FileStore};
use crate::recent::AbortLookup;

/// What the dispatcher does after replying (only `reset` needs this).
#[derive(Debug, PartialEq)]
pub enum After {
    Nothing,
    Reset,
}

pub async fn apply(node: &Facilities<'_>, command: Command) -> (Result<Value, ErrorInfo>, After) {
    let gpio = node.gpio;
    let result = match command {
        Command::BlinkLed(BlinkLed {
            times,
            forever,
            on_seconds,
            off_seconds,
        }) => {
            let plan = BlinkPlan {
                times,
                forever,
                on: Duration::from_secs_f64(on_seconds),
                off: Duration::from_secs_f64(off_seconds),
            };
            node.blinker.start(gpio.clone(), plan);
            to_value(BlinkReply { blinking: true })
        }
        Command::ReadGpios(plastic_proto::command::ReadGpios { pins }) => {
            let mut pins = pins.unwrap_or_else(|| gpio.pins());
            pins.sort_unstable();
            pins.dedup();
            pins.iter()
                .map(|&p| gpio.read(p).map(|v| json!([p, v])))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
                .map_err(|e| ErrorInfo::new("ValueError", e.to_string()))
        }
        Command::WriteGpios(plastic_proto::command::WriteGpios { pins_and_values }) => {
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
        Command::Ping(_) => Ok(json!(PONG)),
        Command::Info(_) => to_value(InfoReply {
            name: node.about.name.to_string(),
            platform: node.about.platform.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            protocol: PROTOCOL_VERSION,
            uptime: node.about.started.elapsed().as_secs_f64(),
            free_memory: meminfo("MemAvailable:"),
            heap: meminfo("MemTotal:"),
            mem_peak: peak_resident(),
            scripts: node.engine.current().running_scripts(),
            blinking: node.blinker.is_running(),
            groups: node.about.groups.clone(),
        }),
        Command::Stop(plastic_proto::command::Stop { name }) => {
            let engine = node.engine.current();
            if let Some(n) = &name {
                if !engine.running_scripts().contains(n) {
                    let missing =
                        ErrorInfo::new("NotFound", format!("no script named `{n}` is running"));
                    return (Err(missing), After::Nothing);
                }
            }
            let (stopped, still_running) = engine.stop_scripts(name.as_deref()).await;
            let blink = name.is_none() && node.blinker.stop(gpio.as_ref());
            to_value(StopReply {
                stopped,
                still_running,
                blink_stopped: blink,
            })
        }
        Command::Reset(_) => return (to_value(ResetReply { resetting: true }), After::Reset),
        Command::Interrupt(plastic_proto::command::Interrupt { id }) => {
            let interrupted = node.engine.current().interrupt(id.as_deref()).await;
            to_value(InterruptReply { interrupted })
        }
        Command::Abort(plastic_proto::command::Abort { id }) => {
            let was = abort(node, &id).await;
            to_value(AbortReply { aborted: id, was })
        }
        Command::ListFiles(_) => blocking(node, |files| files.list())
            .await
            .map(|files| Value::Array(files.into_iter().map(|(p, s)| json!([p, s])).collect()))
            .map_err(|e| ErrorInfo::new(e.kind(), e.to_string())),
        Command::ReadFile(plastic_proto::command::ReadFile {
            filename,
            offset,
            length,
        }) => blocking(node, move |files| {
            let read = files.read_chunk(&filename, offset, length)?;
            Ok((filename, read))
        })
        .await
        .map(|(filename, (data, size, sha256))| {
            use base64::Engine;
            json!(plastic_proto::command::FileData {
                filename: filename.as_str().to_owned(),
                offset,
                size,
                content: base64::engine::general_purpose::STANDARD.encode(data),
                sha256,
            })
        })
        .map_err(|e| ErrorInfo::new(e.kind(), e.to_string())),
        Command::MakeDir(plastic_proto::command::MakeDir { path }) => {
            blocking(node, move |files| files.make_dir(&path).map(|()| path))
                .await
                .map(|path| {
                    json!(plastic_proto::command::Made {
                        made: path.as_str().to_owned()
                    })
                })
                .map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))
        }
        Command::RemoveDir(plastic_proto::command::RemoveDir { path }) => {
            blocking(node, move |files| files.remove_dir(&path).map(|()| path))
                .await
                .map(|path| {
                    json!(plastic_proto::command::Removed {
                        removed: path.as_str().to_owned()
                    })
                })
                .map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))
        }
        Command::RemoveFile(plastic_proto::command::RemoveFile { filename }) => {
            blocking(node, move |files| {
                files.remove(&filename).map(|()| filename)
            })
            .await
            .map(|filename| {
                json!(plastic_proto::command::Removed {
                    removed: filename.as_str().to_owned()
                })
            })
            .map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))
        }
    };
    (result, After::Nothing)
}

fn to_value<T: serde::Serialize>(reply: T) -> Result<Value, ErrorInfo> {
    serde_json::to_value(reply).map_err(|e| ErrorInfo::new("InternalError", e.to_string()))
}

/// A `/proc/meminfo` figure (`MemAvailable:`, `MemTotal:`) in bytes.
pub(crate) fn meminfo(key: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

/// The node process's peak resident size (`VmHWM`) in bytes.
fn peak_resident() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmHWM:",
    )
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs file-system work on tokio's blocking pool: the node's runtime has one thread, and a
/// slow disk must not stall its pings.
async fn blocking<T: Send + 'static>(
    node: &Facilities<'_>,
    work: impl FnOnce(&FileStore) -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    let files = node.files.clone();
    tokio::task::spawn_blocking(move || work(&files))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()))
}

/// Where `abort` finds its request: Python work on the engine first (dropped while it waits,
/// interrupted while it runs), else the duplicate memory, which remembers an id it has not
/// seen so the request is refused when it arrives.
async fn abort(node: &Facilities<'_>, id: &str) -> AbortedWas {
    let engine = node.engine.current();
    if let Some(was) = engine.abort(id).await {
        return was;
    }
    let lookup = node.recent.lock().unwrap().abort(id);
    match lookup {
        AbortLookup::Unseen => AbortedWas::Unseen,
        AbortLookup::Finished => AbortedWas::Finished,
        AbortLookup::Running => {
            // Admitted on another worker thread a moment ago: it reaches the engine's list
            // within microseconds. Anything else in progress (a file chunk, a deploy) is not
            // Python work and finishes as it is.
            for _ in 0..ADMITTED_TO_QUEUED_TRIES {
                tokio::time::sleep(Duration::from_millis(2)).await;
                if let Some(was) = engine.abort(id).await {
                    return was;
                }
            }
            AbortedWas::Running
        }
    }
}

const ADMITTED_TO_QUEUED_TRIES: usize = 10;

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use plastic_proto::{NodeName, RelPath};
    use serde_json::{json, Map, Value};

    use super::*;
    use crate::blink::Blinker;
    use crate::facilities::{About, EngineSlot};
    use crate::gpio::{Gpio, SimGpio};
    use crate::python::{Host, PythonEngine};

    /// A host for an engine these tests never start (the interpreter starts on first use).
    struct NoHost(SimGpio);

    impl Host for NoHost {
        fn node_name(&self) -> &str {
            "pi-1"
        }
        fn gpio(&self) -> &dyn Gpio {
            &self.0
        }
        fn unique_id(&self) -> Vec<u8> {
            vec![0; 6]
        }
        fn send(&self, _: &str, _: Map<String, Value>) -> Result<String, String> {
            Err("no network here".into())
        }
        fn request(&self, _: &str, _: Map<String, Value>, _: Duration) -> Result<Value, ErrorInfo> {
            Err(ErrorInfo::new("ConnectionError", "no network here"))
        }
        fn publish_event(&self, _: &str, _: Value) -> Result<(), String> {
            Err("no network here".into())
        }
        fn shares_engine_with(&self, _: &str) -> bool {
            false
        }
        fn log(&self, _: &str, _: &str, _: &str) {}
        fn reset(&self) {}
    }

    struct Fixture {
        about: About,
        gpio: Arc<dyn Gpio>,
        blinker: Blinker,
        files: Arc<FileStore>,
        engine: EngineSlot,
        recent: std::sync::Mutex<crate::recent::Recent>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let files = Arc::new(FileStore::open(dir.path()).unwrap());
            let host = Arc::new(NoHost(SimGpio::esp8266()));
            Fixture {
                about: About::new(
                    NodeName::parse("pi-1").unwrap(),
                    "sim".into(),
                    vec!["lab".into()],
                ),
                gpio: Arc::new(SimGpio::esp8266()),
                blinker: Blinker::default(),
                engine: EngineSlot::new(PythonEngine::new(host, dir.path().to_path_buf())),
                files,
                recent: std::sync::Mutex::new(crate::recent::Recent::new(0.0)),
                _dir: dir,
            }
        }

        async fn apply(&self, name: &str, kwargs: Value) -> (Result<Value, ErrorInfo>, After) {
            let Value::Object(kwargs) = kwargs else {
                panic!("kwargs must be an object")
            };
            let command = Command::parse(name, &kwargs).unwrap();
            let facilities = Facilities {
                about: &self.about,
                gpio: &self.gpio,
                blinker: &self.blinker,
                files: &self.files,
                engine: &self.engine,
                recent: &self.recent,
            };
            apply(&facilities, command).await
        }

        async fn ok(&self, name: &str, kwargs: Value) -> Value {
            let (result, after) = self.apply(name, kwargs).await;
            assert_eq!(after, After::Nothing);
            result.unwrap()
        }
    }

    #[tokio::test]
    async fn ping_and_gpio_reads_and_writes() {
        let f = Fixture::new();
        assert_eq!(f.ok("ping", json!({})).await, json!("pong"));
        assert_eq!(
            f.ok("read GPIOs", json!({"pins": [5, 2, 5]})).await,
            json!([[2, 1], [5, 1]]),
            "sorted, each pin once"
        );
        assert_eq!(
            f.ok(
                "write GPIOs",
                json!({"pins_and_values": [[4, 0], [2, 0], [4, 1]]})
            )
            .await,
            json!([[2, 0], [4, 1]]),
            "the touched pins' final values, sorted"
        );
        // A bad pin anywhere changes nothing.
        let (result, _) = f
            .apply("write GPIOs", json!({"pins_and_values": [[5, 0], [99, 0]]}))
            .await;
        assert_eq!(result.unwrap_err().kind, "ValueError");
        assert_eq!(f.gpio.read(5).unwrap(), 1);
    }

    #[tokio::test]
    async fn blink_info_stop_and_reset_replies_have_the_documented_fields() {
        let f = Fixture::new();
        assert_eq!(
            f.ok("blink led", json!({"forever": true})).await,
            json!({"blinking": true})
        );
        let info = f.ok("info", json!({})).await;
        let mut fields: Vec<_> = info.as_object().unwrap().keys().cloned().collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "blinking",
                "free_memory",
                "groups",
                "heap",
                "mem_peak",
                "name",
                "platform",
                "protocol",
                "scripts",
                "uptime",
                "version"
            ]
        );
        assert_eq!(
            (&info["name"], &info["blinking"], &info["groups"]),
            (&json!("pi-1"), &json!(true), &json!(["lab"]))
        );
        assert_eq!(
            f.ok("stop", json!({})).await,
            json!({"stopped": [], "still_running": [], "blink_stopped": true})
        );
        let (missing, _) = f.apply("stop", json!({"name": "main"})).await;
        assert_eq!(missing.unwrap_err().kind, "NotFound");
        let (reset, after) = f.apply("reset", json!({})).await;
        assert_eq!(
            (reset.unwrap(), after),
            (json!({"resetting": true}), After::Reset)
        );
    }

    /// `abort` of an id the node has not seen remembers it (the request is refused when it
    /// arrives); of a finished one, changes nothing.
    #[tokio::test]
    async fn abort_remembers_unseen_ids_and_leaves_finished_ones() {
        let f = Fixture::new();
        let abort = |id: &str| json!({ "id": id });
        assert_eq!(
            f.ok("abort", abort("later")).await,
            json!({"aborted": "later", "was": "unseen"})
        );
        assert_eq!(
            f.recent.lock().unwrap().begin("later", None),
            crate::recent::Seen::Aborted
        );
        f.recent.lock().unwrap().begin("done", None);
        f.recent.lock().unwrap().finish("done", None);
        assert_eq!(
            f.ok("abort", abort("done")).await,
            json!({"aborted": "done", "was": "finished"})
        );
    }

    #[tokio::test]
    async fn files_are_listed_and_removed() {
        let f = Fixture::new();
        let path = RelPath::parse("lib/a.py").unwrap();
        f.files.write_all(&path, b"x = 1").unwrap();
        assert_eq!(
            f.ok("list files", json!({})).await,
            json!([["lib/a.py", 5]])
        );
        assert_eq!(
            f.ok("remove file", json!({"filename": "lib/a.py"})).await,
            json!({"removed": "lib/a.py"})
        );
        let (gone, _) = f
            .apply("remove file", json!({"filename": "lib/a.py"}))
            .await;
        assert!(gone.is_err());
    }
}
