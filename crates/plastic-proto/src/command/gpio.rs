//! `read GPIOs` and `write GPIOs`: pins as `[[pin, value], ...]`, the seed's tuples as lists.

use serde_json::{json, Map, Value};

use super::{BuiltIn, Reply};
use crate::{Capability, ProtoError};

/// Every pin with its value, or only the pins asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadGpios {
    pub pins: Option<Vec<u32>>,
}

/// Sets pins in the order given; the reply is the resulting state of the pins touched.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteGpios {
    pub pins_and_values: Vec<(u32, u8)>,
}

/// `[[pin, value], ...]` sorted by pin: the reply of both commands.
pub type PinValues = Vec<(u32, u8)>;

impl BuiltIn for ReadGpios {
    const NAME: &'static str = "read GPIOs";
    const CAPABILITY: Capability = Capability::GpioRead;

    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        let pins = match kwargs.get("pins") {
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
        };
        Ok(ReadGpios { pins })
    }

    fn kwargs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(pins) = &self.pins {
            m.insert("pins".into(), json!(pins));
        }
        m
    }
}

impl Reply for ReadGpios {
    type Output = PinValues;
}

impl BuiltIn for WriteGpios {
    const NAME: &'static str = "write GPIOs";
    const CAPABILITY: Capability = Capability::GpioWrite;

    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        let not_pairs = ProtoError::WrongType {
            field: "pins_and_values",
            expected: "a list of [pin, value] pairs",
        };
        let Some(list) = kwargs.get("pins_and_values") else {
            return Err(ProtoError::Missing("pins_and_values"));
        };
        let Value::Array(items) = list else {
            return Err(not_pairs);
        };
        let mut pairs = Vec::with_capacity(items.len());
        for item in items {
            match item.as_array().map(Vec::as_slice) {
                Some([pin, value]) => {
                    pairs.push((pin_number(pin, "pins_and_values")?, pin_value(value)?))
                }
                _ => return Err(not_pairs),
            }
        }
        Ok(WriteGpios {
            pins_and_values: pairs,
        })
    }

    fn kwargs(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("pins_and_values".into(), json!(self.pins_and_values));
        m
    }
}

impl Reply for WriteGpios {
    type Output = PinValues;
}

impl WriteGpios {
    /// `2=0` (the CLI's form) as a pin and a value.
    pub fn parse_assignment(text: &str) -> Result<(u32, u8), ProtoError> {
        let bad = || ProtoError::Invalid {
            field: "pins_and_values",
            reason: format!("`{text}` is not PIN=VALUE with VALUE 0 or 1"),
        };
        let (pin, value) = text.split_once('=').ok_or_else(bad)?;
        let pin: u32 = pin.trim().parse().map_err(|_| bad())?;
        match value.trim() {
            "0" => Ok((pin, 0)),
            "1" => Ok((pin, 1)),
            _ => Err(bad()),
        }
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

    #[test]
    fn assignments_parse_and_refuse_bad_values() {
        assert_eq!(WriteGpios::parse_assignment("2=0").unwrap(), (2, 0));
        assert!(WriteGpios::parse_assignment("2=5").is_err());
        assert!(WriteGpios::parse_assignment("x=1").is_err());
        assert!(WriteGpios::parse_assignment("21").is_err());
    }

    #[test]
    fn pin_values_read_as_pairs() {
        let v: PinValues = serde_json::from_str("[[0,1],[2,0]]").unwrap();
        assert_eq!(v, vec![(0, 1), (2, 0)]);
        assert_eq!(serde_json::to_string(&v).unwrap(), "[[0,1],[2,0]]");
    }
}
