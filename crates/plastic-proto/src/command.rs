//! The built-in commands of `{"type": "command", "command": ..., "kwargs": {...}}`, with the
//! seed's names (`blink led`, `read GPIOs`, `write GPIOs`) and the ones plastic adds.

use serde_json::{Map, Value};

use crate::message::{get_bool, get_f64, get_str, get_u64};
use crate::{ProtoError, RelPath};

pub const COMMAND_NAMES: &[&str] = &[
    "blink led",
    "read GPIOs",
    "write GPIOs",
    "ping",
    "info",
    "stop",
    "reset",
    "list files",
    "remove file",
];

/// The longest single on or off phase of a blink; longer ones are almost surely a unit mistake
/// (milliseconds passed as seconds).
const MAX_PHASE_SECONDS: f64 = 3600.0;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Blinks the LED in the background and replies at once.
    BlinkLed {
        times: u64,
        forever: bool,
        on_seconds: f64,
        off_seconds: f64,
    },
    /// Every pin with its value, or only the pins asked for.
    ReadGpios {
        pins: Option<Vec<u32>>,
    },
    /// Sets pins in the order given; the reply is the resulting state of the pins touched.
    WriteGpios {
        pins_and_values: Vec<(u32, u8)>,
    },
    Ping,
    Info,
    /// Stops the named script, or every script and the blinker when no name is given.
    Stop {
        name: Option<String>,
    },
    /// Restarts the node program (a soft reset on a board).
    Reset,
    ListFiles,
    RemoveFile {
        filename: RelPath,
    },
}

impl Command {
    pub fn parse(name: &str, kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        Ok(match name {
            "blink led" => {
                let on_seconds = get_f64(kwargs, "on_seconds")?.unwrap_or(0.5);
                let off_seconds = get_f64(kwargs, "off_seconds")?.unwrap_or(0.5);
                for (field, v) in [("on_seconds", on_seconds), ("off_seconds", off_seconds)] {
                    if !(0.0..=MAX_PHASE_SECONDS).contains(&v) {
                        return Err(ProtoError::Invalid {
                            field: if field == "on_seconds" {
                                "on_seconds"
                            } else {
                                "off_seconds"
                            },
                            reason: format!("{v} is outside 0 to {MAX_PHASE_SECONDS} seconds"),
                        });
                    }
                }
                Command::BlinkLed {
                    times: get_u64(kwargs, "times")?.unwrap_or(10),
                    forever: get_bool(kwargs, "forever")?.unwrap_or(false),
                    on_seconds,
                    off_seconds,
                }
            }
            "read GPIOs" => Command::ReadGpios {
                pins: match kwargs.get("pins") {
                    None | Some(Value::Null) => None,
                    Some(Value::Array(items)) => Some(
                        items
                            .iter()
                            .map(|v| pin_number(v, "pins"))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    Some(_) => {
                        return Err(ProtoError::WrongType {
                            field: "pins",
                            expected: "a list of pin numbers",
                        })
                    }
                },
            },
            "write GPIOs" => {
                let Some(list) = kwargs.get("pins_and_values") else {
                    return Err(ProtoError::Missing("pins_and_values"));
                };
                let Value::Array(items) = list else {
                    return Err(ProtoError::WrongType {
                        field: "pins_and_values",
                        expected: "a list of [pin, value] pairs",
                    });
                };
                let mut pairs = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_array().map(Vec::as_slice) {
                        Some([pin, value]) => {
                            pairs.push((pin_number(pin, "pins_and_values")?, pin_value(value)?))
                        }
                        _ => {
                            return Err(ProtoError::WrongType {
                                field: "pins_and_values",
                                expected: "a list of [pin, value] pairs",
                            })
                        }
                    }
                }
                Command::WriteGpios {
                    pins_and_values: pairs,
                }
            }
            "ping" => Command::Ping,
            "info" => Command::Info,
            "stop" => Command::Stop {
                name: get_str(kwargs, "name")?.map(str::to_owned),
            },
            "reset" => Command::Reset,
            "list files" => Command::ListFiles,
            "remove file" => {
                let filename =
                    get_str(kwargs, "filename")?.ok_or(ProtoError::Missing("filename"))?;
                Command::RemoveFile {
                    filename: RelPath::parse(filename)?,
                }
            }
            other => return Err(ProtoError::UnknownCommand(other.chars().take(80).collect())),
        })
    }
}

fn pin_number(v: &Value, field: &'static str) -> Result<u32, ProtoError> {
    v.as_u64()
        .filter(|n| *n <= 255)
        .map(|n| n as u32)
        .ok_or(ProtoError::WrongType {
            field,
            expected: "pin numbers from 0 to 255",
        })
}

fn pin_value(v: &Value) -> Result<u8, ProtoError> {
    match v {
        Value::Bool(b) => Ok(*b as u8),
        Value::Number(n) if n.as_u64() == Some(0) => Ok(0),
        Value::Number(n) if n.as_u64() == Some(1) => Ok(1),
        _ => Err(ProtoError::WrongType {
            field: "pins_and_values",
            expected: "pin values 0 or 1",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn parses_the_seed_commands() {
        let blink = Command::parse(
            "blink led",
            &kw(json!({"times": 10, "forever": false, "on_seconds": 0.05, "off_seconds": 0.05})),
        )
        .unwrap();
        assert_eq!(
            blink,
            Command::BlinkLed {
                times: 10,
                forever: false,
                on_seconds: 0.05,
                off_seconds: 0.05
            }
        );
        let write = Command::parse(
            "write GPIOs",
            &kw(json!({"pins_and_values": [[2, 0], [2, 1], [2, 0]]})),
        )
        .unwrap();
        assert_eq!(
            write,
            Command::WriteGpios {
                pins_and_values: vec![(2, 0), (2, 1), (2, 0)]
            }
        );
        assert_eq!(
            Command::parse("read GPIOs", &Map::new()).unwrap(),
            Command::ReadGpios { pins: None }
        );
    }

    #[test]
    fn refuses_bad_arguments_with_the_field_named() {
        let err =
            Command::parse("write GPIOs", &kw(json!({"pins_and_values": [[2, 7]]}))).unwrap_err();
        assert!(err.to_string().contains("pins_and_values"), "{err}");
        let err = Command::parse("blink led", &kw(json!({"on_seconds": -1}))).unwrap_err();
        assert!(err.to_string().contains("on_seconds"), "{err}");
        let err = Command::parse("fly", &Map::new()).unwrap_err();
        assert!(err.to_string().contains("unknown command `fly`"), "{err}");
        let err = Command::parse("remove file", &kw(json!({"filename": "../x"}))).unwrap_err();
        assert_eq!(err.kind(), "BadPath");
    }
}
