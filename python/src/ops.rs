//! From what Python asks (an operation name and JSON arguments) to the vocabulary's typed
//! requests (`plastic_proto::command`). Wire names and fields are spelled only there.

use std::path::PathBuf;

use plastic_client::UploadFile;
use plastic_proto::command::{
    Apply, BlinkLed, Eval, Exec, Function, Info, ListFiles, Ping, ReadGpios, RemoveFile, Reset,
    Script, Stop, WriteGpios,
};
use plastic_proto::{Operation, RelPath, Request};
use serde_json::{Map, Value};

/// What goes to each node: one request, a chunked upload, or a chunked download (`dir`: saved under
/// `dir/<node>/`; None: the bytes come back in the outcome).
#[derive(Clone)]
pub enum Work {
    Request(Request),
    Upload(UploadFile),
    Download { path: RelPath, dir: Option<PathBuf> },
}

/// Builds the work for `op` from its arguments (a JSON object). Errors are sentences for a
/// Python `ValueError`.
pub fn build(op: &str, args: &Value, data: Option<Vec<u8>>) -> Result<Work, String> {
    let empty = Map::new();
    let a = match args {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err("arguments must be a JSON object".into()),
    };
    let text = |k: &str| -> Result<String, String> {
        a.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("`{op}` needs `{k}` as a string"))
    };
    let opt_text = |k: &str| -> Result<Option<String>, String> {
        match a.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`{k}` must be a string")),
        }
    };
    let request = |o: &dyn Fn() -> Request| Work::Request(o());
    Ok(match op {
        "eval" => Work::Request(Eval::new(text("code")?).to_request()),
        "exec" => Work::Request(Exec::new(text("code")?).to_request()),
        "call" => Work::Request(function(a, text("name")?)?.to_request()),
        // A function's source, defined in the node's namespace, then called.
        "apply" => {
            let call = function(a, text("name")?)?;
            Work::Request(
                Apply {
                    source: text("source")?,
                    name: call.name,
                    args: call.args,
                    kwargs: call.kwargs,
                }
                .to_request(),
            )
        }
        "script" => {
            let name = text("name")?;
            plastic_proto::name::validate_name(&name).map_err(|e| e.to_string())?;
            Work::Request(
                Script {
                    script: text("source")?,
                    name,
                }
                .to_request(),
            )
        }
        "stop" => Work::Request(
            Stop {
                name: opt_text("name")?,
            }
            .to_request(),
        ),
        "gpio_read" => {
            let pins = match a.get("pins") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    serde_json::from_value::<Vec<u32>>(v.clone())
                        .map_err(|_| "pins must be a list of pin numbers".to_owned())?,
                ),
            };
            Work::Request(ReadGpios { pins }.to_request())
        }
        "gpio_write" => {
            let pairs = a
                .get("pins_and_values")
                .cloned()
                .unwrap_or(Value::Array(vec![]));
            let pins_and_values: Vec<(u32, u8)> = serde_json::from_value(pairs).map_err(|_| {
                "pins and values must be pairs of a pin number and 0 or 1".to_owned()
            })?;
            if pins_and_values.iter().any(|(_, v)| *v > 1) {
                return Err("a pin's value must be 0 or 1".into());
            }
            Work::Request(WriteGpios { pins_and_values }.to_request())
        }
        "blink" => {
            let mut blink = BlinkLed::default();
            if let Some(t) = a.get("times").and_then(Value::as_u64) {
                blink.times = t;
            }
            if let Some(f) = a.get("forever").and_then(Value::as_bool) {
                blink.forever = f;
            }
            if let Some(s) = a.get("on_seconds").and_then(Value::as_f64) {
                blink.on_seconds = s;
            }
            if let Some(s) = a.get("off_seconds").and_then(Value::as_f64) {
                blink.off_seconds = s;
            }
            if !(blink.on_seconds >= 0.0 && blink.off_seconds >= 0.0) {
                return Err("on and off times must be non-negative seconds".into());
            }
            Work::Request(blink.to_request())
        }
        "ping" => request(&|| Ping.to_request()),
        "info" => request(&|| Info.to_request()),
        "reset" => request(&|| Reset.to_request()),
        "list_files" => request(&|| ListFiles.to_request()),
        "remove_file" => {
            let filename = RelPath::parse(&text("path")?).map_err(|e| e.to_string())?;
            Work::Request(RemoveFile { filename }.to_request())
        }
        "put" => {
            let path = RelPath::parse(&text("path")?).map_err(|e| e.to_string())?;
            let data = data.ok_or("`put` needs the file's bytes")?;
            Work::Upload(UploadFile::new(path, data).map_err(|e| e.to_string())?)
        }
        "get" => Work::Download {
            path: RelPath::parse(&text("path")?).map_err(|e| e.to_string())?,
            dir: opt_text("dir")?.map(PathBuf::from),
        },
        other => return Err(format!("unknown operation `{other}`")),
    })
}

fn function(a: &Map<String, Value>, name: String) -> Result<Function, String> {
    let args = match a.get("args") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(v)) => v.clone(),
        Some(_) => return Err("`args` must be a list".into()),
    };
    let kwargs = match a.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("`kwargs` must be an object".into()),
    };
    Ok(Function { name, args, kwargs })
}
