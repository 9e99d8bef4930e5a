//! Python objects to and from JSON, and exceptions to error replies.

use plastic_proto::ErrorInfo;
use rustpython_vm::builtins::PyBaseExceptionRef;
use rustpython_vm::py_serde::{PyObjectDeserializer, PyObjectSerializer};
use rustpython_vm::{AsObject, PyObjectRef, PyResult, VirtualMachine};
use serde::de::DeserializeSeed;
use serde_json::Value;

/// The JSON form of a value, or its `repr()` with `true` when JSON cannot hold it.
pub(crate) fn to_json(vm: &VirtualMachine, obj: &PyObjectRef) -> (Value, bool) {
    match serde_json::to_value(PyObjectSerializer::new(vm, obj)) {
        Ok(v) => (v, false),
        Err(_) => {
            let repr = obj
                .repr(vm)
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "<unrepresentable>".into());
            (Value::String(repr), true)
        }
    }
}

/// Strict conversion for data a script sends: no silent `repr` fallback.
pub(crate) fn to_json_strict(vm: &VirtualMachine, obj: &PyObjectRef) -> PyResult<Value> {
    serde_json::to_value(PyObjectSerializer::new(vm, obj))
        .map_err(|e| vm.new_type_error(e.to_string()))
}

pub(crate) fn from_json(vm: &VirtualMachine, value: &Value) -> PyResult<PyObjectRef> {
    PyObjectDeserializer::new(vm)
        .deserialize(value.clone())
        .map_err(|e| vm.new_value_error(format!("cannot convert JSON to Python: {e}")))
}

pub(crate) fn error_info(vm: &VirtualMachine, exc: &PyBaseExceptionRef) -> ErrorInfo {
    let kind = exc.class().name().to_string();
    let message = exc
        .as_object()
        .str(vm)
        .map(|s| s.to_string())
        .unwrap_or_default();
    let mut traceback = String::new();
    let _ = vm.write_exception(&mut traceback, exc);
    ErrorInfo {
        kind,
        message,
        traceback,
    }
}
