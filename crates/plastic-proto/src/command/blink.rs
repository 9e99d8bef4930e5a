//! `blink led`: blinks the on-board LED in the background and replies at once.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BuiltIn, Reply};
use crate::fields::{get_bool, get_f64, get_u64};
use crate::{Capability, ProtoError};

/// The longest single on or off phase of a blink; longer ones are almost surely a unit mistake
/// (milliseconds passed as seconds).
const MAX_PHASE_SECONDS: f64 = 3600.0;

#[derive(Debug, Clone, PartialEq)]
pub struct BlinkLed {
    pub times: u64,
    pub forever: bool,
    pub on_seconds: f64,
    pub off_seconds: f64,
}

impl Default for BlinkLed {
    /// The seed's defaults: 10 times, half a second on and off.
    fn default() -> Self {
        BlinkLed {
            times: 10,
            forever: false,
            on_seconds: 0.5,
            off_seconds: 0.5,
        }
    }
}

/// `{"blinking": true}`. What was asked (times, forever) is the sender's to remember: a board
/// does not spend memory echoing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlinkReply {
    pub blinking: bool,
}

impl BuiltIn for BlinkLed {
    const NAME: &'static str = "blink led";
    const CAPABILITY: Capability = Capability::GpioWrite;

    fn parse(kwargs: &Map<String, Value>) -> Result<Self, ProtoError> {
        let d = BlinkLed::default();
        let on_seconds = phase(kwargs, "on_seconds")?.unwrap_or(d.on_seconds);
        let off_seconds = phase(kwargs, "off_seconds")?.unwrap_or(d.off_seconds);
        Ok(BlinkLed {
            times: get_u64(kwargs, "times")?.unwrap_or(d.times),
            forever: get_bool(kwargs, "forever")?.unwrap_or(d.forever),
            on_seconds,
            off_seconds,
        })
    }

    fn kwargs(&self) -> Map<String, Value> {
        crate::fields::object([
            ("times", self.times.into()),
            ("forever", self.forever.into()),
            ("on_seconds", self.on_seconds.into()),
            ("off_seconds", self.off_seconds.into()),
        ])
    }
}

impl Reply for BlinkLed {
    type Output = BlinkReply;
}

impl BlinkLed {
    /// What the CLI says after the node accepted the blink.
    pub fn describe(&self) -> String {
        if self.forever {
            "blinking until `plastic stop`".into()
        } else {
            format!("blinking {} times", self.times)
        }
    }
}

fn phase(kwargs: &Map<String, Value>, field: &'static str) -> Result<Option<f64>, ProtoError> {
    let v = get_f64(kwargs, field)?;
    match v {
        Some(s) if !(0.0..=MAX_PHASE_SECONDS).contains(&s) => Err(ProtoError::Invalid {
            field,
            reason: format!("{s} is outside 0 to {MAX_PHASE_SECONDS} seconds"),
        }),
        _ => Ok(v),
    }
}
