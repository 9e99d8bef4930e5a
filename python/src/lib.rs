//! `plastic._plastic`: the small native core of the Python package.
//!
//! Everything about the protocol (correlation, resends, signing, TLS, definite outcomes) is
//! `plastic-client`'s; this module only
//!
//! - owns a tokio runtime (`runtime.rs`),
//! - resolves a TARGET to nodes against the presence the client follows (`target.rs`, the
//!   CLI's rules),
//! - turns a small operation name plus JSON arguments into the vocabulary's typed requests
//!   (`ops.rs`; no wire name is spelled here),
//! - runs them to every node and hands back each node's outcome as one JSON text
//!   (`connection.rs`), blocking with the GIL released or as a [`pending::Pending`] that Python
//!   waits on, polls or awaits.
//!
//! The Python API (Client, View, AsyncResult, exceptions, magics) is pure Python on top, in
//! `plastic/__init__.py`.

mod connection;
mod ops;
mod pending;
mod runtime;
mod target;

use pyo3::prelude::*;

#[pymodule]
fn _plastic(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<connection::Core>()?;
    m.add_class::<pending::Pending>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
