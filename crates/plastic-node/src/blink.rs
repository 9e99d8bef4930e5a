//! `blink led`: blinks in the background so the reply goes out at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::gpio::Gpio;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlinkPlan {
    pub times: u64,
    pub forever: bool,
    pub on: Duration,
    pub off: Duration,
}

/// The shortest on or off phase actually slept.
const MIN_PHASE: Duration = Duration::from_millis(5);

/// At most one blink runs per node; a new one replaces it.
#[derive(Default)]
pub struct Blinker {
    running: Mutex<Option<JoinHandle<()>>>,
}

impl Blinker {
    pub fn start(&self, gpio: Arc<dyn Gpio>, plan: BlinkPlan) {
        let (pin, lit) = gpio.led();
        // Zero-length phases would spin the node's only runtime thread.
        let (on, off) = (plan.on.max(MIN_PHASE), plan.off.max(MIN_PHASE));
        let task = tokio::spawn(async move {
            let mut done = 0u64;
            while plan.forever || done < plan.times {
                let _ = gpio.write(pin, lit);
                tokio::time::sleep(on).await;
                let _ = gpio.write(pin, 1 - lit);
                tokio::time::sleep(off).await;
                done += 1;
            }
        });
        if let Some(old) = self.running.lock().unwrap().replace(task) {
            old.abort();
        }
    }

    /// Stops a running blink and leaves the LED off. True if one was running.
    pub fn stop(&self, gpio: &dyn Gpio) -> bool {
        let Some(task) = self.running.lock().unwrap().take() else {
            return false;
        };
        let was_running = !task.is_finished();
        task.abort();
        let (pin, lit) = gpio.led();
        let _ = gpio.write(pin, 1 - lit);
        was_running
    }

    pub fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }
}
