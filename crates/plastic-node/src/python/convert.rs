//! Python objects to and from JSON, and exceptions to error replies.

use plastic_proto::ErrorInfo;
use rustpython_vm::builtins::PyBaseExceptionRef;
use rustpython_vm::py_serde::{PyObjectDeserializer, PyObjectSerializer};
use rustpython_vm::{AsObject, PyObjectRef, PyResult, VirtualMachine};
use serde::de::DeserializeSeed;
use serde_json::Value;

/// Deepest JSON a node reads or writes, as serde_json's reader and the envelope allow.
const MAX_JSON_DEPTH: usize = 128;

/// The JSON form of a value, or its `repr()` with `true` when JSON cannot hold it exactly.
pub(crate) fn to_json(vm: &VirtualMachine, obj: &PyObjectRef) -> (Value, bool) {
    // Checked first: the serializer recurses without a limit, and a value nested deeper than
    // that (built in a loop) would overflow the stack.
    let exact = json_exact(obj, 0);
    let value = if exact {
        serde_json::to_value(PyObjectSerializer::new(vm, obj)).ok()
    } else {
        None
    };
    match value {
        Some(v) => (v, false),
        None => {
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
    if too_deep(obj, MAX_JSON_DEPTH) {
        return Err(vm.new_recursion_error(format!(
            "value nested deeper than {MAX_JSON_DEPTH} levels cannot be sent as JSON"
        )));
    }
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

/// Whether `obj`'s lists, tuples and dicts nest deeper than `left` levels.
fn too_deep(obj: &PyObjectRef, left: usize) -> bool {
    use rustpython_vm::builtins::{PyDict, PyList, PyTuple};
    let children: Vec<PyObjectRef> = if let Some(list) = obj.downcast_ref::<PyList>() {
        list.borrow_vec().to_vec()
    } else if let Some(tuple) = obj.downcast_ref::<PyTuple>() {
        tuple.as_slice().to_vec()
    } else if let Some(dict) = obj.downcast_ref::<PyDict>() {
        dict.into_iter().map(|(_, v)| v).collect()
    } else {
        return false;
    };
    left == 0 || children.iter().any(|c| too_deep(c, left - 1))
}

/// Whether JSON holds `obj` exactly: serde would quietly turn NaN and infinities into `null`
/// and int or bool dict keys into strings, which protocol.md promises to return as `repr`.
fn json_exact(obj: &PyObjectRef, depth: usize) -> bool {
    use rustpython_vm::builtins::{PyDict, PyFloat, PyList, PyStr, PyTuple};
    if depth > 100 {
        return false;
    }
    if let Some(f) = obj.downcast_ref::<PyFloat>() {
        return f.to_f64().is_finite();
    }
    if let Some(list) = obj.downcast_ref::<PyList>() {
        return list.borrow_vec().iter().all(|v| json_exact(v, depth + 1));
    }
    if let Some(tuple) = obj.downcast_ref::<PyTuple>() {
        return tuple.iter().all(|v| json_exact(v, depth + 1));
    }
    if let Some(dict) = obj.downcast_ref::<PyDict>() {
        return dict
            .into_iter()
            .all(|(k, v)| k.downcast_ref::<PyStr>().is_some() && json_exact(&v, depth + 1));
    }
    true
}
