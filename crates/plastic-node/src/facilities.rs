//! What a request's handlers reach of the node: a narrow view of its state, so the built-in
//! commands and the dispatcher depend on these few things and not on the node's whole state.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use plastic_proto::NodeName;

use crate::blink::Blinker;
use crate::files::FileStore;
use crate::gpio::Gpio;
use crate::python::PythonEngine;
use crate::recent::Recent;

/// Who the node is, for `info`.
pub struct About {
    pub name: NodeName,
    pub platform: String,
    pub groups: Vec<String>,
    pub started: Instant,
}

impl About {
    /// `started` is now: `uptime` counts from here.
    pub fn new(name: NodeName, platform: String, groups: Vec<String>) -> Self {
        About {
            name,
            platform,
            groups,
            started: Instant::now(),
        }
    }
}

/// The node's current Python engine. A reset replaces it, so handlers ask for it each time
/// rather than keep one.
pub struct EngineSlot(Mutex<Arc<PythonEngine>>);

impl EngineSlot {
    pub fn new(engine: PythonEngine) -> Self {
        EngineSlot(Mutex::new(Arc::new(engine)))
    }

    pub fn current(&self) -> Arc<PythonEngine> {
        self.0.lock().unwrap().clone()
    }

    pub fn replace(&self, engine: PythonEngine) {
        *self.0.lock().unwrap() = Arc::new(engine);
    }
}

/// The parts of the node a request may act on.
#[derive(Clone, Copy)]
pub struct Facilities<'a> {
    pub about: &'a About,
    pub gpio: &'a Arc<dyn Gpio>,
    pub blinker: &'a Blinker,
    pub files: &'a Arc<FileStore>,
    pub engine: &'a EngineSlot,
    /// The duplicate memory: `abort` remembers there an id it has not seen yet.
    pub recent: &'a Mutex<Recent>,
}
