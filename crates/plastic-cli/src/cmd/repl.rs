//! `plastic repl NODE`: an interactive Python session on one node.
//!
//! Each complete input goes to the node as one request: an expression as `eval` (its value is
//! printed, as Python's REPL does, unless it is `None`), anything else as `exec` (what it
//! printed is shown). Whether an input is complete is decided here, with the same parser the
//! Rust node uses: more lines are asked for while the source ends inside a bracket, a string or
//! a block, and a block (a line ending in `:`) ends with an empty line, as in Python.
//!
//! On a terminal: line editing and a history file (`$PLASTIC_HOME/repl_history`); Ctrl-C while
//! the node runs something sends `interrupt` for that request (the node answers with its
//! `KeyboardInterrupt`), Ctrl-C at the prompt drops the input, Ctrl-D leaves. With stdin not a
//! terminal it runs what it reads, block by block, without prompts (exit 1 if any input failed),
//! so sessions can be scripted and tested.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use plastic_client::ClientError;
use plastic_proto::command::{Eval, Exec, Interrupt};
use plastic_proto::{NodeName, Operation, Reply};
use rustpython_vm::compiler::parser::{self, LexicalErrorType, ParseErrorType};

use crate::global::Global;
use crate::output::{shown, shown_text};
use crate::session::Session;
use crate::target::one_node;

#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic repl pi-1\n  printf 'x = 6\\nx * 7\\n' | plastic repl esp-1   # scripted: prints 42"
)]
pub struct ReplArgs {
    /// The node (one name)
    pub node: String,
}

/// What the lines typed so far make.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// More lines are needed.
    Incomplete,
    /// One expression: sent as `eval`.
    Expression,
    /// Statements (or a syntax error the node will report): sent as `exec`.
    Statements,
}

/// Classifies `source` (the lines so far, joined with `\n`, without a final newline).
pub fn classify(source: &str) -> Input {
    let last = source.rsplit('\n').next().unwrap_or_default();
    let first = source.split('\n').next().unwrap_or_default();
    // A compound statement goes on until an empty line, even when what is there already
    // parses (Python's REPL does the same).
    let in_block = first.trim_start().starts_with('@')
        || source.split('\n').any(|l| l.trim_end().ends_with(':'));
    if in_block && !last.trim().is_empty() {
        return Input::Incomplete;
    }
    if source.trim().is_empty() {
        return Input::Statements;
    }
    match parser::parse_module(source) {
        Ok(_) => {
            if parser::parse_expression(source.trim()).is_ok() {
                Input::Expression
            } else {
                Input::Statements
            }
        }
        Err(e) => {
            let at_end = usize::from(e.location.start()) >= source.trim_end().len();
            // A triple-quoted string still open goes on; a one-line string left open is an
            // error, as in Python.
            let start = usize::from(e.location.start());
            let opened = source.get(start..).unwrap_or_default();
            let unterminated = matches!(
                &e.error,
                ParseErrorType::Lexical(LexicalErrorType::UnclosedStringError)
            ) && (opened.chars().take(5).collect::<String>().contains("'''")
                || opened
                    .chars()
                    .take(5)
                    .collect::<String>()
                    .contains("\"\"\""));
            if (at_end || unterminated) && !in_block {
                Input::Incomplete
            } else {
                // A real syntax error: the node says so, with its own message.
                Input::Statements
            }
        }
    }
}

pub async fn run(global: &Global, args: ReplArgs) -> Result<ExitCode> {
    let s = Session::open(global).await?;
    let code = repl(&s, &args.node).await;
    s.close().await;
    code
}

async fn repl(s: &Session, target: &str) -> Result<ExitCode> {
    let node = one_node(&s.client, target, "a REPL talks to", s.timeout).await?;
    // A REPL waits as long as the code runs (Ctrl-C interrupts it), unless told otherwise.
    let timeout = if global_timeout_given() {
        s.timeout
    } else {
        Duration::from_secs(24 * 3600)
    };
    if std::io::stdin().is_terminal() {
        interactive(s, &node, timeout).await
    } else {
        scripted(s, &node, timeout).await
    }
}

/// `--timeout` on the command line (or not): the REPL's default is to wait.
fn global_timeout_given() -> bool {
    std::env::args().any(|a| a == "--timeout" || a.starts_with("--timeout="))
}

/// Runs stdin's lines block by block; exit 1 when any block failed.
async fn scripted(s: &Session, node: &NodeName, timeout: Duration) -> Result<ExitCode> {
    let mut lines: Vec<String> = Vec::new();
    let mut all_ok = true;
    // Read on a blocking thread: the client's connection (keepalives) runs on this one, and
    // input may come slowly.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(64);
    tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        lines.push(line?);
        let source = lines.join("\n");
        match classify(&source) {
            Input::Incomplete => continue,
            // A blank line between inputs is nothing to run.
            _ if source.trim().is_empty() => lines.clear(),
            kind => {
                all_ok &= send(s, node, &source, kind, timeout).await?;
                lines.clear();
            }
        }
    }
    // The end of input ends an open block too.
    let source = lines.join("\n");
    if !source.trim().is_empty() {
        let kind = match classify(&format!("{source}\n")) {
            Input::Expression => Input::Expression,
            _ => Input::Statements,
        };
        all_ok &= send(s, node, &source, kind, timeout).await?;
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::FAILED)
    })
}

async fn interactive(s: &Session, node: &NodeName, timeout: Duration) -> Result<ExitCode> {
    use rustyline::error::ReadlineError;
    let history = crate::session::plastic_home().join("repl_history");
    let mut editor = rustyline::DefaultEditor::new()?;
    let _ = editor.load_history(&history);
    eprintln!(
        "plastic repl: {node} on {} (Ctrl-D leaves, Ctrl-C interrupts)",
        s.client.broker()
    );
    let mut lines: Vec<String> = Vec::new();
    loop {
        let prompt = if lines.is_empty() {
            format!("{node}>>> ")
        } else {
            "... ".to_owned()
        };
        // rustyline blocks: read on a blocking thread so the client's driver keeps running.
        let (line, back) = tokio::task::spawn_blocking(move || {
            let line = editor.readline(&prompt);
            (line, editor)
        })
        .await?;
        editor = back;
        match line {
            Ok(line) => {
                lines.push(line);
                let source = lines.join("\n");
                match classify(&source) {
                    Input::Incomplete => continue,
                    kind => {
                        if !source.trim().is_empty() {
                            let _ = editor.add_history_entry(source.as_str());
                            send(s, node, &source, kind, timeout).await?;
                        }
                        lines.clear();
                    }
                }
            }
            Err(ReadlineError::Interrupted) => {
                eprintln!("KeyboardInterrupt");
                lines.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(ExitCode::SUCCESS)
}

/// Sends one input and prints its outcome; false when it failed. Ctrl-C while it runs sends
/// `interrupt` for it and waits for the node's answer (its `KeyboardInterrupt`).
async fn send(
    s: &Session,
    node: &NodeName,
    source: &str,
    kind: Input,
    timeout: Duration,
) -> Result<bool> {
    let mut request = match kind {
        Input::Expression => Eval {
            to_evaluate: source.trim().to_owned(),
        }
        .to_request(),
        _ => Exec {
            to_exec: source.to_owned(),
        }
        .to_request(),
    };
    let id = plastic_proto::new_message_id();
    request
        .fields
        .insert("message_id".into(), id.clone().into());
    let request = s.with_ttl(request);
    let waiting = s.client.request(node, request, timeout);
    tokio::pin!(waiting);
    let outcome = tokio::select! {
        outcome = &mut waiting => outcome,
        _ = tokio::signal::ctrl_c() => {
            let interrupt = Interrupt { id: Some(id) }.to_request();
            s.client.send(node, interrupt).await?;
            // The node answers the interrupted request itself; a board cannot (it reads
            // nothing while it runs), so a second Ctrl-C stops waiting.
            tokio::select! {
                outcome = &mut waiting => outcome,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("KeyboardInterrupt (the node did not answer yet)");
                    return Ok(false);
                }
            }
        }
    };
    Ok(show(outcome, matches!(kind, Input::Expression)))
}

fn show(outcome: Result<Reply, ClientError>, expression: bool) -> bool {
    let reply = match outcome {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("{}", shown(&e.to_string()));
            return false;
        }
    };
    print!("{}", shown_text(&reply.stdout));
    if let Some(error) = &reply.error {
        if error.traceback.is_empty() {
            eprintln!("{}: {}", error.kind, shown_text(&error.message));
        } else {
            eprint!("{}", shown_text(&error.traceback));
            if !error.traceback.ends_with('\n') {
                eprintln!();
            }
        }
        return false;
    }
    if expression && !reply.result.is_null() {
        let text = match &reply.result {
            // The node's repr of a value JSON cannot carry.
            serde_json::Value::String(text) if reply.repr => text.clone(),
            value => value.to_string(),
        };
        println!("{}", shown(&text));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_complete_when_python_would_run_them() {
        for (source, want) in [
            ("2+3", Input::Expression),
            ("x = 1", Input::Statements),
            ("print('a')", Input::Expression),
            ("import os", Input::Statements),
            ("f(", Input::Incomplete),
            ("[1,\n 2", Input::Incomplete),
            ("[1,\n 2]", Input::Expression),
            ("[1,\n 2]\n", Input::Expression),
            ("s = '''a", Input::Incomplete),
            ("s = '''a\nb'''", Input::Statements),
            ("s = 'a", Input::Statements),
            ("for i in range(3):", Input::Incomplete),
            ("for i in range(3):\n    print(i)", Input::Incomplete),
            ("for i in range(3):\n    print(i)\n", Input::Statements),
            ("def f():\n    return 1\n", Input::Statements),
            ("1 +* 2", Input::Statements),
            ("", Input::Statements),
        ] {
            assert_eq!(classify(source), want, "{source:?}");
        }
    }
}
