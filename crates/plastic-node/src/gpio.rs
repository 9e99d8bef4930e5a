//! GPIO behind a trait, so the dispatcher and the Python `machine.Pin` do not care whether the
//! pins are simulated or real (a Linux character-device backend comes later).

use std::collections::BTreeMap;
use std::sync::Mutex;

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum GpioError {
    #[error("pin {pin} does not exist on this node (pins: {available})")]
    NoSuchPin { pin: u32, available: String },
    #[error("pin value must be 0 or 1, not {0}")]
    BadValue(i64),
}

pub trait Gpio: Send + Sync {
    /// Every pin this bank has, in ascending order.
    fn pins(&self) -> Vec<u32>;
    fn read(&self, pin: u32) -> Result<u8, GpioError>;
    fn write(&self, pin: u32, value: u8) -> Result<(), GpioError>;
    /// The on-board LED's pin and the value that lights it.
    fn led(&self) -> (u32, u8);
}

/// The ESP8266's usable pins (NodeMCU / WeMos D1 mini), as the seed's boards have.
pub const ESP8266_PINS: &[u32] = &[0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16];
/// Pin 2 drives the ESP-12's blue LED, which lights when the pin is low.
pub const ESP8266_LED: (u32, u8) = (2, 0);

/// A simulated bank: every pin starts high (pulled up), like the real board after reset.
pub struct SimGpio {
    pins: Mutex<BTreeMap<u32, u8>>,
    led: (u32, u8),
}

impl SimGpio {
    pub fn esp8266() -> Self {
        SimGpio {
            pins: Mutex::new(ESP8266_PINS.iter().map(|&p| (p, 1)).collect()),
            led: ESP8266_LED,
        }
    }

    fn no_such_pin(&self, pin: u32) -> GpioError {
        let available = self
            .pins()
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        GpioError::NoSuchPin { pin, available }
    }
}

impl Gpio for SimGpio {
    fn pins(&self) -> Vec<u32> {
        self.pins.lock().unwrap().keys().copied().collect()
    }

    fn read(&self, pin: u32) -> Result<u8, GpioError> {
        let value = self.pins.lock().unwrap().get(&pin).copied();
        value.ok_or_else(|| self.no_such_pin(pin))
    }

    fn write(&self, pin: u32, value: u8) -> Result<(), GpioError> {
        if value > 1 {
            return Err(GpioError::BadValue(value.into()));
        }
        let mut pins = self.pins.lock().unwrap();
        match pins.get_mut(&pin) {
            Some(v) => {
                *v = value;
                Ok(())
            }
            None => {
                drop(pins);
                Err(self.no_such_pin(pin))
            }
        }
    }

    fn led(&self) -> (u32, u8) {
        self.led
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_bank_starts_high_and_refuses_unknown_pins() {
        let g = SimGpio::esp8266();
        assert_eq!(g.pins(), ESP8266_PINS);
        assert!(g.pins().iter().all(|&p| g.read(p) == Ok(1)));
        g.write(2, 0).unwrap();
        assert_eq!(g.read(2), Ok(0));
        assert!(matches!(
            g.read(7),
            Err(GpioError::NoSuchPin { pin: 7, .. })
        ));
        assert_eq!(g.write(2, 3), Err(GpioError::BadValue(3)));
    }
}
