//! Runs one admitted request: the body decides which handler (Python, files, built-in
//! commands). Nothing here replies; the outcome goes back to the request path, which hands it
//! to the outbox.

use plastic_proto::command::{Apply, Eval, Exec, Function, Script, ScriptStarted};
use plastic_proto::{Body, ErrorInfo, RelPath};
use serde_json::{json, Value};

use crate::commands::{self, After};
use crate::facilities::Facilities;
use crate::python::{Outcome, PyRequest};

/// Runs a request. `id` (its message id, what `interrupt` names) and `deadline` (Unix seconds)
/// go with Python work, which may wait its turn.
pub async fn run(
    node: &Facilities<'_>,
    body: Body,
    id: Option<String>,
    deadline: Option<f64>,
) -> (Outcome, After) {
    let quiet = |result: Result<Value, ErrorInfo>| Outcome {
        result: result.map(|v| (v, false)),
        stdout: String::new(),
    };
    match body {
        Body::Eval(Eval { to_evaluate }) => (
            node.engine
                .current()
                .request(PyRequest::Eval(to_evaluate), id, deadline)
                .await,
            After::Nothing,
        ),
        Body::Exec(Exec { to_exec }) => (
            node.engine
                .current()
                .request(PyRequest::Exec(to_exec), id, deadline)
                .await,
            After::Nothing,
        ),
        Body::Apply(Apply {
            source,
            name,
            args,
            kwargs,
        }) => (
            node.engine
                .current()
                .request(
                    PyRequest::Apply {
                        source,
                        name,
                        args,
                        kwargs,
                    },
                    id,
                    deadline,
                )
                .await,
            After::Nothing,
        ),
        Body::Function(Function { name, args, kwargs }) => (
            node.engine
                .current()
                .request(PyRequest::Call { name, args, kwargs }, id, deadline)
                .await,
            After::Nothing,
        ),
        Body::Script(Script { script, name }) => {
            let file = format!("{name}.py");
            let path = node.files.root().join(&file).to_string_lossy().into_owned();
            let engine = node.engine.current();
            let save = || {
                let rel = RelPath::parse(&file).map_err(|e| ErrorInfo::from(&e))?;
                node.files
                    .write_all(&rel, script.as_bytes())
                    .map_err(|e| ErrorInfo::new(e.kind(), e.to_string()))?;
                // The script's file is a module too (`import main`): read it afresh.
                engine.forget_module(&name);
                Ok(())
            };
            let result = engine
                .start_script(&name, script.clone(), path, save)
                .await
                .map(|()| {
                    json!(ScriptStarted {
                        name,
                        started: true
                    })
                });
            (quiet(result), After::Nothing)
        }
        Body::File(chunk) => {
            let files = node.files.clone();
            let module = chunk
                .is_last()
                .then(|| chunk.filename.module_name().map(str::to_owned))
                .flatten();
            let result = tokio::task::spawn_blocking(move || files.write_chunk(&chunk))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()).into()));
            if let (Ok(_), Some(module)) = (&result, module) {
                // A replaced module must be read again by the next `import`.
                node.engine.current().forget_module(&module);
            }
            (
                quiet(
                    result
                        .map(|r| json!(r))
                        .map_err(|e| ErrorInfo::new(e.kind(), e.to_string())),
                ),
                After::Nothing,
            )
        }
        Body::Command(command) => {
            let (result, after) = commands::apply(node, command).await;
            (quiet(result), after)
        }
        // Admission drops results before they get here; refuse rather than trust that.
        Body::Result(_) | Body::Taken(_) => (
            Outcome::error(ErrorInfo::new(
                "ProtocolError",
                "a reply or notice is not a request",
            )),
            After::Nothing,
        ),
    }
}
