//! The protocol's vocabulary: every request a node understands, one file per family, each with
//! its parser (what a node reads), its encoder (what a client sends), the [`Capability`] it
//! needs (what the hub checks) and its typed reply (what comes back in `result`).
//!
//! | family | message types and built-in commands | reply |
//! |---|---|---|
//! | [`python`] | `eval`, `exec`, `function`, commands `interrupt`, `abort` | the value / `null` / the return value, [`InterruptReply`], [`AbortReply`] |
//! | [`scripts`] | `script`, command `stop` | [`ScriptStarted`], [`StopReply`] |
//! | [`gpio`] | `read GPIOs`, `write GPIOs` | [`PinValues`] |
//! | [`blink`] | `blink led` | [`BlinkReply`] |
//! | [`files`] | `file` (chunks), `read file`, `list files`, `remove file`, `make dir`, `remove dir` | [`ChunkReply`], [`FileData`], [`FileList`], [`Removed`], [`Made`] |
//! | [`system`] | `ping`, `info`, `reset` | `"pong"`, [`InfoReply`], [`ResetReply`] |
//!
//! No other crate spells a command name or a reply field: the CLI, the hub's access rules, the
//! node and the bench all go through these types, so a field added here is added everywhere
//! (and to `docs/protocol.md`, which lists every reply's exact fields).

/// A built-in command without arguments, and its reply type.
macro_rules! no_kwargs {
    ($ty:ty, $name:literal, $cap:expr, $out:ty) => {
        impl $crate::command::BuiltIn for $ty {
            const NAME: &'static str = $name;
            const CAPABILITY: $crate::Capability = $cap;
            fn parse(
                _: &serde_json::Map<String, serde_json::Value>,
            ) -> Result<Self, $crate::ProtoError> {
                Ok(Self)
            }
            fn kwargs(&self) -> serde_json::Map<String, serde_json::Value> {
                serde_json::Map::new()
            }
        }
        impl $crate::command::Reply for $ty {
            type Output = $out;
        }
    };
}

pub mod blink;
pub mod files;
pub mod gpio;
pub mod python;
pub mod scripts;
pub mod system;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

pub use blink::{BlinkLed, BlinkReply};
pub use files::{
    ChunkReply, FileData, FileList, ListFiles, Made, MakeDir, ReadFile, RemoveDir, RemoveFile,
    Removed,
};
pub use gpio::{PinValues, ReadGpios, WriteGpios};
pub use python::{
    Abort, AbortReply, AbortedWas, Apply, Eval, Exec, Function, Interrupt, InterruptReply,
};
pub use scripts::{Script, ScriptStarted, Stop, StopReply};
pub use system::{Info, InfoReply, Ping, Reset, ResetReply, PONG};

use crate::fields::object;
use crate::{Capability, ProtoError, Request};

/// A request a client can build and whose reply it can read.
pub trait Operation {
    /// What a successful reply's `result` holds.
    type Output: Serialize + DeserializeOwned;
    /// What the sender must be allowed to do (the hub checks it before routing).
    fn capability(&self) -> Capability;
    /// The message body (type and fields) without the envelope; [`Request::stamp`] adds that.
    fn to_request(&self) -> Request;
}

/// A built-in command: `{"type": "command", "command": <name>, "kwargs": {...}}`.
pub trait BuiltIn: Sized {
    /// The command's name on the wire (the seed's spelling: `blink led`, `read GPIOs`...).
    const NAME: &'static str;
    const CAPABILITY: Capability;
    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError>;
    fn kwargs(&self) -> Map<String, Value>;
}

/// The wire form of a built-in command, the one place that spells it.
pub(crate) fn command_request(name: &str, kwargs: Map<String, Value>) -> Request {
    Request::new(object([
        ("type", Command::TYPE.into()),
        ("command", name.into()),
        ("kwargs", Value::Object(kwargs)),
    ]))
}

macro_rules! builtins {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Every built-in command, parsed.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $($variant($ty),)*
        }

        /// The names of every built-in command, in the protocol's order.
        pub const COMMAND_NAMES: &[&str] = &[$(<$ty as BuiltIn>::NAME,)*];

        impl Command {
            /// Parses a command by name; an unknown name is `UnknownCommand`.
            pub fn parse(name: &str, kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
                $(if name == <$ty as BuiltIn>::NAME {
                    return <$ty as BuiltIn>::parse(kwargs).map(Command::$variant);
                })*
                Err(ProtoError::UnknownCommand {
                    name: name.chars().take(80).collect(),
                    known: COMMAND_NAMES,
                })
            }

            pub fn name(&self) -> &'static str {
                match self {
                    $(Command::$variant(_) => <$ty as BuiltIn>::NAME,)*
                }
            }

            pub fn capability(&self) -> Capability {
                match self {
                    $(Command::$variant(_) => <$ty as BuiltIn>::CAPABILITY,)*
                }
            }

            fn kwargs(&self) -> Map<String, Value> {
                match self {
                    $(Command::$variant(c) => c.kwargs(),)*
                }
            }

            /// Checks a reply's `result` against this command's documented reply (see
            /// [`exact_shape`]).
            pub fn check_result(&self, result: &Value) -> Result<(), crate::ReplyError> {
                match self {
                    $(Command::$variant(_) => exact_shape::<<$ty as Reply>::Output>(result),)*
                }
            }

            /// The capability a command needs by name alone (the hub reads no more of it).
            /// Names this version does not know need [`Capability::Command`].
            pub fn capability_of(name: &str) -> Capability {
                $(if name == <$ty as BuiltIn>::NAME {
                    return <$ty as BuiltIn>::CAPABILITY;
                })*
                Capability::Command
            }
        }

        $(
            impl Operation for $ty {
                type Output = <$ty as Reply>::Output;
                fn capability(&self) -> Capability {
                    <$ty as BuiltIn>::CAPABILITY
                }
                fn to_request(&self) -> Request {
                    command_request(<$ty as BuiltIn>::NAME, self.kwargs())
                }
            }
            impl From<$ty> for Command {
                fn from(c: $ty) -> Command {
                    Command::$variant(c)
                }
            }
        )*
    };
}

/// Whether `v` is exactly a `T`: every field of `T` there with its type, and no other
/// (re-encoding the decoded value gives `v` back).
pub fn exact_shape<T: Serialize + DeserializeOwned>(v: &Value) -> Result<(), crate::ReplyError> {
    let shape = |e: serde_json::Error| crate::ReplyError::Shape(e.to_string());
    let typed = T::deserialize(v).map_err(shape)?;
    let again = serde_json::to_value(typed).map_err(shape)?;
    if &again != v {
        return Err(crate::ReplyError::Shape(format!(
            "{v} has fields other than the documented ones ({again})"
        )));
    }
    Ok(())
}

/// The reply type of a built-in command (kept apart from [`BuiltIn`] so each family file
/// states it beside the command).
pub trait Reply {
    type Output: Serialize + DeserializeOwned;
}

builtins! {
    BlinkLed(BlinkLed),
    ReadGpios(ReadGpios),
    WriteGpios(WriteGpios),
    Ping(Ping),
    Info(Info),
    Stop(Stop),
    Reset(Reset),
    Interrupt(Interrupt),
    Abort(Abort),
    ListFiles(ListFiles),
    RemoveFile(RemoveFile),
    ReadFile(ReadFile),
    MakeDir(MakeDir),
    RemoveDir(RemoveDir),
}

impl Command {
    /// The `type` of every command message.
    pub const TYPE: &'static str = "command";

    pub fn to_request(&self) -> Request {
        command_request(self.name(), self.kwargs())
    }
}

/// The capability a message needs, from its `type` and (for `command`) the command's name,
/// as the hub reads them without parsing the rest. `None`: not a request (`result`, `sync`) or
/// a type no node runs (refused by the node as `UnknownType`), so nothing to authorise.
pub fn capability_for(message_type: &str, command: Option<&str>) -> Option<Capability> {
    Some(match message_type {
        Eval::TYPE => Capability::Eval,
        Exec::TYPE => Capability::Exec,
        Function::TYPE => Capability::Call,
        Apply::TYPE => Capability::Exec,
        Script::TYPE => Capability::Deploy,
        crate::FileChunk::TYPE => Capability::File,
        Command::TYPE => Command::capability_of(command.unwrap_or_default()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kw(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_command_round_trips_through_its_wire_form() {
        let commands: Vec<Command> = vec![
            BlinkLed {
                times: 3,
                forever: false,
                on_seconds: 0.05,
                off_seconds: 0.1,
            }
            .into(),
            ReadGpios {
                pins: Some(vec![2, 4]),
            }
            .into(),
            ReadGpios { pins: None }.into(),
            WriteGpios {
                pins_and_values: vec![(2, 0), (2, 1)],
            }
            .into(),
            Ping.into(),
            Info.into(),
            Stop {
                name: Some("main".into()),
            }
            .into(),
            Stop { name: None }.into(),
            Reset.into(),
            Interrupt { id: None }.into(),
            Interrupt {
                id: Some("0123abcd".into()),
            }
            .into(),
            Abort {
                id: "0123abcd".into(),
            }
            .into(),
            ListFiles.into(),
            RemoveFile {
                filename: crate::RelPath::parse("a/b.txt").unwrap(),
            }
            .into(),
            ReadFile {
                filename: crate::RelPath::parse("a/b.txt").unwrap(),
                offset: 5,
                length: 100,
            }
            .into(),
            MakeDir {
                path: crate::RelPath::parse("a/c").unwrap(),
            }
            .into(),
            RemoveDir {
                path: crate::RelPath::parse("a/c").unwrap(),
            }
            .into(),
        ];
        assert_eq!(
            commands.len() - 3,
            COMMAND_NAMES.len(),
            "every command is here"
        );
        for command in commands {
            let wire = command.to_request();
            let parsed = crate::Incoming::parse(&wire.to_bytes()).unwrap();
            assert_eq!(parsed.body.unwrap(), crate::Body::Command(command));
        }
    }

    #[test]
    fn capabilities_by_type_and_command_name() {
        assert_eq!(capability_for("eval", None), Some(Capability::Eval));
        assert_eq!(capability_for("script", None), Some(Capability::Deploy));
        assert_eq!(
            capability_for("command", Some("stop")),
            Some(Capability::Deploy)
        );
        assert_eq!(
            capability_for("command", Some("blink led")),
            Some(Capability::GpioWrite)
        );
        assert_eq!(
            capability_for("command", Some("list files")),
            Some(Capability::File)
        );
        for name in ["read file", "make dir", "remove dir"] {
            assert_eq!(
                capability_for("command", Some(name)),
                Some(Capability::File),
                "{name}"
            );
        }
        assert_eq!(
            capability_for("command", Some("teleport")),
            Some(Capability::Command)
        );
        assert_eq!(capability_for("result", None), None);
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
            Command::BlinkLed(BlinkLed {
                times: 10,
                forever: false,
                on_seconds: 0.05,
                off_seconds: 0.05
            })
        );
        let write = Command::parse(
            "write GPIOs",
            &kw(json!({"pins_and_values": [[2, 0], [2, 1], [2, 0]]})),
        )
        .unwrap();
        assert_eq!(
            write,
            Command::WriteGpios(WriteGpios {
                pins_and_values: vec![(2, 0), (2, 1), (2, 0)]
            })
        );
        assert_eq!(
            Command::parse("read GPIOs", &Map::new()).unwrap(),
            Command::ReadGpios(ReadGpios { pins: None })
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
        assert!(err.to_string().contains("blink led"), "{err}");
        let err = Command::parse("remove file", &kw(json!({"filename": "../x"}))).unwrap_err();
        assert_eq!(err.kind(), "BadPath");
    }
}
