//! The node's state, shared by the message loop and the requests it runs.
//!
//! Fields are private: requests reach the node through [`Facilities`] (what handlers act on),
//! the [`Outbox`] (how they answer) and [`Admission`](crate::admission) settings
//! ([`Shared::signing`]); the duplicate memory is locked only for admission and by the outbox.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use plastic_proto::{NodeKey, NodeName};

use crate::blink::Blinker;
use crate::facilities::{About, EngineSlot, Facilities};
use crate::files::FileStore;
use crate::gpio::Gpio;
use crate::log_topic::LogTopic;
use crate::outbox::Outbox;
use crate::python::{Host, Interpreter, PythonEngine};
use crate::recent::Recent;

/// What a signed request is checked against (docs/protocol.md, "Signed requests").
pub struct Signing {
    /// With a key, the node runs only requests signed with it.
    pub key: Option<NodeKey>,
    /// How far a signed request's time stamp may be from this node's clock, in seconds.
    pub max_skew: f64,
    /// When this node started, in Unix seconds: signed requests stamped earlier are refused.
    pub started_at: f64,
}

/// Everything requests share. Lives behind an `Arc`.
pub struct Shared {
    about: About,
    gpio: Arc<dyn Gpio>,
    /// The node's files (public: the CLI changes directory to their root).
    pub files: Arc<FileStore>,
    blinker: Blinker,
    engine: EngineSlot,
    host: Arc<dyn Host>,
    /// Request ids seen lately, with their replies (duplicate deliveries run once), and the
    /// replay floor for signed requests.
    recent: Arc<Mutex<Recent>>,
    signing: Signing,
    outbox: Outbox,
    log: LogTopic,
}

/// The parts [`Shared::new`] is made of.
pub struct Parts {
    pub about: About,
    pub gpio: Arc<dyn Gpio>,
    pub files: Arc<FileStore>,
    pub interpreter: Option<Arc<Interpreter>>,
    pub host: Arc<dyn Host>,
    pub recent: Arc<Mutex<Recent>>,
    pub signing: Signing,
    pub outbox: Outbox,
    pub log: LogTopic,
}

impl Shared {
    pub fn new(parts: Parts) -> Self {
        let Parts {
            about,
            gpio,
            files,
            interpreter,
            host,
            recent,
            signing,
            outbox,
            log,
        } = parts;
        let engine = new_engine(&interpreter, &host, files.root().to_path_buf());
        Shared {
            about,
            gpio,
            files,
            blinker: Blinker::default(),
            engine: EngineSlot::new(engine),
            host,
            recent,
            signing,
            outbox,
            log,
        }
    }

    pub fn name(&self) -> &NodeName {
        &self.about.name
    }

    pub fn facilities(&self) -> Facilities<'_> {
        Facilities {
            about: &self.about,
            gpio: &self.gpio,
            blinker: &self.blinker,
            files: &self.files,
            engine: &self.engine,
            recent: &self.recent,
        }
    }

    pub fn engine(&self) -> Arc<PythonEngine> {
        self.engine.current()
    }

    pub fn signing(&self) -> &Signing {
        &self.signing
    }

    /// The duplicate memory, for admission.
    pub fn recent(&self) -> &Mutex<Recent> {
        &self.recent
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub fn log(&self, source: &str, level: &str, text: &str) {
        self.log.line(source, level, text);
    }

    /// Asks the message loop to end for a restart of the node program (after `reset` replied,
    /// or from Python's `machine.reset()`): see [`crate::node::Ended::Reset`].
    pub fn request_reset(&self) {
        self.host.reset();
    }

    /// Before a restart: Python requests in progress are interrupted (they answer
    /// `KeyboardInterrupt` rather than hold the restart up), the blink stops and pins go back
    /// to their power-on state.
    pub async fn before_restart(&self) {
        self.engine.current().interrupt(None).await;
        self.blinker.stop(self.gpio.as_ref());
        for pin in self.gpio.pins() {
            let _ = self.gpio.write(pin, 1);
        }
    }
}

fn new_engine(
    interpreter: &Option<Arc<Interpreter>>,
    host: &Arc<dyn Host>,
    root: PathBuf,
) -> PythonEngine {
    match interpreter {
        Some(interp) => PythonEngine::on(interp.clone(), host.clone(), root),
        None => PythonEngine::new(host.clone(), root),
    }
}
