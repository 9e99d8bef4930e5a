//! The Python engine without any network: a fake host records what Python does to the node.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use plastic_node::gpio::{Gpio, SimGpio};
use plastic_node::python::{Host, Outcome, PythonEngine};
use plastic_proto::ErrorInfo;
use serde_json::{json, Map, Value};

struct FakeHost {
    name: String,
    gpio: SimGpio,
    logs: Mutex<Vec<(String, String)>>,
    logged: Condvar,
    sent: Mutex<Vec<(String, Value)>>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            name: "fake-1".into(),
            gpio: SimGpio::esp8266(),
            logs: Mutex::default(),
            logged: Condvar::new(),
            sent: Mutex::default(),
        }
    }
}

impl FakeHost {
    /// Waits until a log line containing `needle` was written.
    fn wait_log(&self, needle: &str) -> String {
        let logs = self.logs.lock().unwrap();
        let (logs, timeout) = self
            .logged
            .wait_timeout_while(logs, Duration::from_secs(20), |l| {
                !l.iter().any(|(_, t)| t.contains(needle))
            })
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "no log line with {needle:?}: {:?}",
            *logs
        );
        logs.iter()
            .find(|(_, t)| t.contains(needle))
            .unwrap()
            .1
            .clone()
    }
}

impl Host for FakeHost {
    fn node_name(&self) -> &str {
        &self.name
    }
    fn gpio(&self) -> &dyn Gpio {
        &self.gpio
    }
    fn unique_id(&self) -> Vec<u8> {
        vec![1, 2, 3]
    }
    fn send(&self, to: &str, msg: Map<String, Value>) -> Result<String, String> {
        self.sent
            .lock()
            .unwrap()
            .push((to.to_owned(), Value::Object(msg)));
        Ok("id-1".into())
    }
    fn request(
        &self,
        to: &str,
        msg: Map<String, Value>,
        _timeout: Duration,
    ) -> Result<Value, ErrorInfo> {
        match to {
            "oracle" => Ok(
                json!({"asked": msg.get("to_evaluate").cloned().unwrap_or(Value::Null), "answer": 42}),
            ),
            _ => Err(ErrorInfo::new("Timeout", format!("no reply from {to}"))),
        }
    }
    fn publish_event(&self, topic: &str, data: Value) -> Result<(), String> {
        self.sent
            .lock()
            .unwrap()
            .push((format!("event:{topic}"), data));
        Ok(())
    }
    fn shares_engine_with(&self, to: &str) -> bool {
        to == self.name
    }
    fn log(&self, source: &str, _level: &str, text: &str) {
        self.logs
            .lock()
            .unwrap()
            .push((source.to_owned(), text.to_owned()));
        self.logged.notify_all();
    }
    fn reset(&self) {}
}

fn engine() -> (Arc<FakeHost>, PythonEngine, tempfile::TempDir) {
    let host = Arc::new(FakeHost::default());
    let dir = tempfile::tempdir().unwrap();
    let engine = PythonEngine::new(host.clone(), dir.path().to_path_buf());
    (host, engine, dir)
}

fn value(o: &Outcome) -> &Value {
    &o.result
        .as_ref()
        .unwrap_or_else(|e| panic!("Python failed: {e:?}"))
        .0
}

#[tokio::test]
async fn eval_exec_and_a_persistent_namespace() {
    let (_, py, _dir) = engine();
    assert_eq!(value(&py.eval("2+3".into(), None).await), &json!(5));
    let out = py.exec("x = 40\nprint('hello', x)".into(), None).await;
    assert_eq!(out.stdout, "hello 40\n");
    assert_eq!(value(&out), &Value::Null);
    assert_eq!(value(&py.eval("x + 2".into(), None).await), &json!(42));
}

#[tokio::test]
async fn falsy_and_unrepresentable_results() {
    let (_, py, _dir) = engine();
    for (expr, want) in [
        ("0", json!(0)),
        ("[]", json!([])),
        ("False", json!(false)),
        ("''", json!("")),
        ("None", Value::Null),
    ] {
        let out = py.eval(expr.into(), None).await;
        assert_eq!(out.result, Ok((want, false)), "{expr}");
    }
    assert_eq!(
        py.eval("{3}".into(), None).await.result,
        Ok((json!("{3}"), true))
    );
    assert_eq!(
        py.eval("{1: 'a'}".into(), None).await.result,
        Ok((json!("{1: 'a'}"), true))
    );
    assert_eq!(
        py.eval("[float('nan')]".into(), None).await.result,
        Ok((json!("[nan]"), true))
    );
    assert_eq!(
        value(&py.eval("{'a': (1, 2)}".into(), None).await),
        &json!({"a": [1, 2]})
    );
}

/// docs/reliability.md ("Bounds"): 64 KiB of captured output per reply; the rest is cut, on a
/// character boundary, with a note, and the request still ends with its result.
#[tokio::test]
async fn captured_output_is_cut_at_64_kib() {
    let (_, py, _dir) = engine();
    let line = format!("{}\n", "é".repeat(49)); // 99 bytes
    let out = py
        .exec(
            "for i in range(2000):\n    print('é' * 49)\nprint('after')\n'done'".into(),
            None,
        )
        .await;
    assert_eq!(value(&out), &Value::Null);
    let printed = line.repeat(2000);
    let mut cut = 64 * 1024;
    while !printed.is_char_boundary(cut) {
        cut -= 1;
    }
    let want = format!("{}\n[output truncated at 64 KiB]\n", &printed[..cut]);
    assert_eq!(out.stdout.len(), want.len());
    assert!(out.stdout == want, "the kept output differs");
    assert!(!out.stdout.contains("after"));
    // The next request captures afresh.
    let out = py.exec("print('small')".into(), None).await;
    assert_eq!(out.stdout, "small\n");
}

#[tokio::test]
async fn exceptions_carry_type_message_and_traceback() {
    let (_, py, _dir) = engine();
    let out = py
        .exec(
            "print('first')\ndef f():\n    raise KeyError('missing')\nf()".into(),
            None,
        )
        .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind, "KeyError");
    assert_eq!(err.message, "'missing'");
    assert!(
        err.traceback
            .starts_with("Traceback (most recent call last):"),
        "{}",
        err.traceback
    );
    assert!(err.traceback.contains("line 3, in f"), "{}", err.traceback);
    assert_eq!(out.stdout, "first\n", "output before the exception is kept");
}

#[tokio::test]
async fn functions_by_dotted_name_and_imports_from_the_node_root() {
    let (_, py, dir) = engine();
    std::fs::write(
        dir.path().join("mathx.py"),
        "def mul(a, b=2):\n    return a * b\n",
    )
    .unwrap();
    let out = py
        .call("mathx.mul".into(), vec![json!(21)], Map::new(), None)
        .await;
    assert_eq!(value(&out), &json!(42));
    let kwargs = json!({"a": 3, "b": 5}).as_object().unwrap().clone();
    assert_eq!(
        value(&py.call("mathx.mul".into(), vec![], kwargs, None).await),
        &json!(15)
    );
    py.exec("def local_fn():\n    return 'local'".into(), None)
        .await;
    assert_eq!(
        value(&py.call("local_fn".into(), vec![], Map::new(), None).await),
        &json!("local")
    );
    let err = py
        .call("nothing_here".into(), vec![], Map::new(), None)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind, "ModuleNotFoundError");
}

#[tokio::test]
async fn micropython_modules_reach_the_node() {
    let (host, py, _dir) = engine();
    py.exec(
        "import machine\np = machine.Pin(2, machine.Pin.OUT)\np.off()".into(),
        None,
    )
    .await
    .result
    .unwrap();
    assert_eq!(host.gpio.read(2), Ok(0));
    assert_eq!(
        value(&py.eval("machine.Pin(2).value()".into(), None).await),
        &json!(0)
    );
    let err = py
        .eval("machine.Pin(7)".into(), None)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind, "ValueError");
    assert_eq!(
        value(
            &py.eval(
                "__import__('json').loads(__import__('json').dumps({'a': [1, None]}))".into(),
                None
            )
            .await
        ),
        &json!({"a": [1, null]})
    );
    assert_eq!(
        value(
            &py.eval("__import__('time').ticks_diff(5, 3)".into(), None)
                .await
        ),
        &json!(2)
    );
    assert_eq!(
        value(&py.eval("__import__('plastic').name".into(), None).await),
        &json!("fake-1")
    );
    assert_eq!(
        value(
            &py.eval(
                "__import__('plastic').request('oracle', {'type': 'eval', 'to_evaluate': 'q'})"
                    .into(),
                None
            )
            .await
        ),
        &json!({"asked": "q", "answer": 42})
    );
    let err = py
        .eval(
            "__import__('plastic').request('nobody', {'type': 'eval'})".into(),
            None,
        )
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind, "TimeoutError");
    py.exec("import plastic\nplastic.send('peer', {'type': 'exec', 'to_exec': 'x=1'})\nplastic.publish('t', [1])".into(), None)
        .await
        .result
        .unwrap();
    let sent = host.sent.lock().unwrap().clone();
    assert_eq!(
        sent[0],
        ("peer".to_owned(), json!({"type": "exec", "to_exec": "x=1"}))
    );
    assert_eq!(sent[1], ("event:t".to_owned(), json!([1])));
}

#[tokio::test]
async fn scripts_log_their_output_and_stop_on_request() {
    let (host, py, _dir) = engine();
    let source = "import time\nprint('one')\nprint('two')\nwhile True:\n    time.sleep(0.05)\n";
    py.start_script("loop", source.into(), "loop.py".into(), || Ok(()))
        .await
        .unwrap();
    host.wait_log("two");
    assert_eq!(py.running_scripts(), vec!["loop".to_owned()]);
    let (stopped, still) = py.stop_scripts(None).await;
    assert_eq!((stopped, still), (vec!["loop".to_owned()], vec![]));
    host.wait_log("stopped");
    assert!(py.running_scripts().is_empty());
    let lines: Vec<String> = host
        .logs
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s == "script:loop")
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(
        &lines[..3],
        ["started", "one", "two"],
        "lines arrive in order"
    );
    // A syntax error is reported when deploying, not later.
    let err = py
        .start_script("bad", "def (".into(), "bad.py".into(), || Ok(()))
        .await
        .unwrap_err();
    assert_eq!(err.kind, "SyntaxError");
    // A crash is logged with its traceback.
    py.start_script(
        "crash",
        "raise RuntimeError('kaput')".into(),
        "crash.py".into(),
        || Ok(()),
    )
    .await
    .unwrap();
    let line = host.wait_log("kaput");
    assert!(
        line.starts_with("crashed:") && line.contains("RuntimeError"),
        "{line}"
    );
}

#[tokio::test]
async fn a_long_exec_does_not_block_scripts_or_later_stop() {
    let (host, py, _dir) = engine();
    py.start_script(
        "ticker",
        "import time\nwhile True:\n    print('tick')\n    time.sleep(0.01)".into(),
        "t.py".into(),
        || Ok(()),
    )
    .await
    .unwrap();
    host.wait_log("tick");
    let ticks = || {
        host.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| t == "tick")
            .count()
    };
    let before = ticks();
    let out = py
        .exec("import time\ntime.sleep(0.2)\nprint('slept')".into(), None)
        .await;
    assert_eq!(
        out.stdout, "slept\n",
        "script output does not leak into a request's capture"
    );
    assert!(
        ticks() > before,
        "the script kept ticking while the exec ran"
    );
    assert_eq!(
        py.stop_scripts(Some("ticker")).await.0,
        vec!["ticker".to_owned()]
    );
}

#[tokio::test]
async fn nodes_sharing_an_interpreter_keep_their_own_namespace_name_and_pins() {
    let interp = plastic_node::python::Interpreter::new();
    let dir = tempfile::tempdir().unwrap();
    let hosts: Vec<Arc<FakeHost>> = ["sim-a", "sim-b"]
        .iter()
        .map(|n| {
            Arc::new(FakeHost {
                name: n.to_string(),
                ..FakeHost::default()
            })
        })
        .collect();
    let engines: Vec<PythonEngine> = hosts
        .iter()
        .map(|h| PythonEngine::on(interp.clone(), h.clone(), dir.path().join(&h.name)))
        .collect();
    engines[0]
        .exec(
            "x = 'mine'\nimport machine\nmachine.Pin(5).off()".into(),
            None,
        )
        .await
        .result
        .unwrap();
    assert_eq!(
        engines[1]
            .eval("x".into(), None)
            .await
            .result
            .unwrap_err()
            .kind,
        "NameError"
    );
    assert_eq!(
        value(&engines[0].eval("x".into(), None).await),
        &json!("mine")
    );
    assert_eq!(
        value(
            &engines[1]
                .eval("__import__('plastic').name".into(), None)
                .await
        ),
        &json!("sim-b")
    );
    assert_eq!(
        (hosts[0].gpio.read(5), hosts[1].gpio.read(5)),
        (Ok(0), Ok(1))
    );
}

#[tokio::test]
async fn a_replaced_module_is_imported_afresh() {
    let (_, py, dir) = engine();
    std::fs::write(dir.path().join("version.py"), "def get():\n    return 1\n").unwrap();
    assert_eq!(
        value(
            &py.call("version.get".into(), vec![], Map::new(), None)
                .await
        ),
        &json!(1)
    );
    std::fs::write(dir.path().join("version.py"), "def get():\n    return 2\n").unwrap();
    py.forget_module("version");
    assert_eq!(
        value(
            &py.call("version.get".into(), vec![], Map::new(), None)
                .await
        ),
        &json!(2)
    );
}

#[tokio::test]
async fn async_scripts_run_on_the_asyncio_shim_and_stop() {
    let (host, py, _dir) = engine();
    let source = [
        "import asyncio",
        "async def blink(n):",
        "    for i in range(n):",
        "        print('blink', i)",
        "        await asyncio.sleep_ms(5)",
        "    return n",
        "async def main():",
        "    a = asyncio.create_task(blink(2))",
        "    b = await asyncio.gather(blink(1), a)",
        "    print('gathered', b)",
        "    while True:",
        "        await asyncio.sleep(0.01)",
        "asyncio.run(main())",
    ]
    .join("\n");
    py.start_script("aio", source, "aio.py".into(), || Ok(()))
        .await
        .unwrap();
    host.wait_log("gathered [1, 2]");
    assert_eq!(py.stop_scripts(Some("aio")).await.0, vec!["aio".to_owned()]);
    host.wait_log("stopped");
}

#[tokio::test]
async fn two_async_scripts_run_side_by_side() {
    let (host, py, _dir) = engine();
    let script = |tag: &str| {
        [
            "import asyncio".to_owned(),
            "async def worker(n):".to_owned(),
            "    await asyncio.sleep(0.02)".to_owned(),
            "    return n * 2".to_owned(),
            "async def main():".to_owned(),
            "    t = asyncio.create_task(worker(21))".to_owned(),
            format!("    print('{tag}', await t)"),
            "    while True:".to_owned(),
            "        await asyncio.sleep(0.01)".to_owned(),
        ]
        .join("\n")
    };
    py.start_script("a", script("a-got"), "a.py".into(), || Ok(()))
        .await
        .unwrap();
    py.start_script("b", script("b-got"), "b.py".into(), || Ok(()))
        .await
        .unwrap();
    host.wait_log("a-got 42");
    host.wait_log("b-got 42");
    let (mut stopped, still) = py.stop_scripts(None).await;
    stopped.sort();
    assert_eq!(
        (stopped, still),
        (vec!["a".to_owned(), "b".to_owned()], vec![])
    );
}

#[tokio::test]
async fn a_request_that_waited_past_its_deadline_does_not_run() {
    let (_, py, _dir) = engine();
    py.exec("ran = False".into(), None).await.result.unwrap();
    let past = plastic_proto::unix_seconds(std::time::SystemTime::now()) - 1.0;
    let err = py
        .exec("ran = True".into(), Some(past))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind, "Expired");
    assert_eq!(value(&py.eval("ran".into(), None).await), &json!(false));
}

/// `stop` ends even a script that never calls sleep, machine or plastic: RustPython cannot
/// interrupt a thread, so scripts run with a line tracer that checks for a stop request. The
/// figure it prints is the tracer's cost on a tight loop (see docs/performance.md).
#[tokio::test]
async fn a_busy_loop_without_sleeps_still_stops() {
    let (host, py, _dir) = engine();
    let source = "print('spinning')\nn = 0\nwhile True:\n    n += 1\n";
    py.start_script("spin", source.into(), "spin.py".into(), || Ok(()))
        .await
        .unwrap();
    host.wait_log("spinning");
    let (stopped, still) = py.stop_scripts(Some("spin")).await;
    assert_eq!((stopped, still), (vec!["spin".to_owned()], vec![]));
    host.wait_log("stopped");
    assert!(py.running_scripts().is_empty());

    // The same counting loop, 200,000 turns, in a script (traced) and in exec (not traced).
    let timed = "import time\nt = time.ticks_ms()\nn = 0\nwhile n < 200000:\n    n += 1\nprint('took', time.ticks_diff(time.ticks_ms(), t))\n";
    py.start_script("timed", timed.into(), "timed.py".into(), || Ok(()))
        .await
        .unwrap();
    let line = host.wait_log("took");
    let traced: f64 = line.split_whitespace().last().unwrap().parse().unwrap();
    let untraced = py.exec(timed.into(), None).await;
    let untraced: f64 = untraced
        .stdout
        .split_whitespace()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    eprintln!(
        "200,000 loop turns: {traced} ms in a script (stop tracer on), {untraced} ms in exec"
    );
}

/// `interrupt` raises KeyboardInterrupt in a request stuck in a loop that calls nothing, and in
/// one asleep in `time.sleep`; a queued request ends without running; the engine answers the
/// next request. The figures it prints are the latency and a request's cost with the hook idle
/// (docs/performance.md).
#[tokio::test]
async fn interrupt_ends_a_busy_or_sleeping_request_and_the_engine_answers_again() {
    use plastic_node::python::PyRequest;
    let (_, py, _dir) = engine();
    let py = Arc::new(py);
    // Warm up (the interpreter starts on first use) and time a trivial eval with no interrupt.
    value(&py.eval("2+3".into(), None).await);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        value(&py.eval("2+3".into(), None).await);
    }
    let per_eval = started.elapsed() / 200;

    for (code, id) in [
        ("while True: pass", "busy"),
        ("import time\ntime.sleep(60)", "asleep"),
    ] {
        let runner = py.clone();
        let task = tokio::spawn(async move {
            runner
                .request(PyRequest::Exec(code.into()), Some(id.into()), None)
                .await
        });
        // Its turn has come once the engine stops answering quickly: wait for a queued probe
        // to sit behind it instead of sleeping.
        let waiter = py.clone();
        let queued = tokio::spawn(async move {
            waiter
                .request(PyRequest::Eval("1".into()), Some("queued".into()), None)
                .await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let asked = std::time::Instant::now();
        let got = py.interrupt(Some(id)).await;
        let outcome = task.await.unwrap();
        let latency = asked.elapsed();
        assert_eq!(got, vec![id.to_owned()]);
        let err = outcome.result.unwrap_err();
        assert_eq!(err.kind, "KeyboardInterrupt", "{err:?}");
        assert!(
            latency < Duration::from_secs(1),
            "interrupt took {latency:?}"
        );
        eprintln!("interrupt of `{code}` answered in {latency:?}");
        // The queued request was not named: it runs.
        assert_eq!(value(&queued.await.unwrap()), &json!(1));
    }
    // A queued request named by id ends without running; nothing else is touched.
    let runner = py.clone();
    let busy = tokio::spawn(async move {
        runner
            .request(
                PyRequest::Exec("while True: pass".into()),
                Some("a".into()),
                None,
            )
            .await
    });
    let runner = py.clone();
    let queued = tokio::spawn(async move {
        runner
            .request(PyRequest::Exec("ran = True".into()), Some("b".into()), None)
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(py.interrupt(Some("b")).await, vec!["b".to_owned()]);
    // Everything still queued or running is reached, the already interrupted one too.
    assert_eq!(
        py.interrupt(None).await,
        vec!["a".to_owned(), "b".to_owned()]
    );
    assert_eq!(
        busy.await.unwrap().result.unwrap_err().kind,
        "KeyboardInterrupt"
    );
    assert_eq!(
        queued.await.unwrap().result.unwrap_err().kind,
        "KeyboardInterrupt"
    );
    assert_eq!(
        value(&py.eval("'ran' in globals()".into(), None).await),
        &json!(false)
    );
    assert_eq!(py.interrupt(None).await, Vec::<String>::new());
    // Still a working engine, and just as fast.
    let started = std::time::Instant::now();
    for _ in 0..200 {
        value(&py.eval("2+3".into(), None).await);
    }
    let after = started.elapsed() / 200;
    eprintln!("eval 2+3: {per_eval:?} per request before any interrupt, {after:?} after");
}

/// Source nested too deeply to compile is refused with RecursionError, whichever way it comes
/// (a request, Python's eval/compile, an import, json); the engine keeps working.
#[tokio::test]
async fn deep_nesting_is_a_recursion_error_never_an_abort() {
    let (_, py, dir) = engine();
    let deep = "[".repeat(50_000) + &"]".repeat(50_000);
    for outcome in [
        py.eval(deep.clone(), None).await,
        py.eval("eval('[' * 50000 + ']' * 50000)".into(), None)
            .await,
        py.exec(
            "compile('(' * 100000 + '1' + ')' * 100000, 'x', 'eval')".into(),
            None,
        )
        .await,
        py.exec(
            "import json\njson.loads('[' * 100000 + ']' * 100000)".into(),
            None,
        )
        .await,
        py.exec(
            "x = []\nfor i in range(100000): x = [x]\nimport json\njson.dumps(x)".into(),
            None,
        )
        .await,
        py.eval(format!("1{}", " + 1".repeat(60_000)), None).await,
    ] {
        let err = outcome.result.unwrap_err();
        assert_eq!(err.kind, "RecursionError", "{err:?}");
    }
    std::fs::write(dir.path().join("deepmod.py"), format!("x = {deep}\n")).unwrap();
    let err = py
        .exec("import deepmod".into(), None)
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind, "RecursionError", "{err:?}");
    // A result too deep for JSON comes back as its repr (or a note), not a crash.
    let deep_value = py
        .eval(
            "[(x := []), [(x := [x]) for i in range(100000)], 0][-1] or x".into(),
            None,
        )
        .await;
    assert!(deep_value.result.unwrap().1, "a repr fallback");
    // Moderate nesting still compiles, and eval still sees the caller's namespace.
    let fine = "(".repeat(500) + "1" + &")".repeat(500);
    assert_eq!(value(&py.eval(fine, None).await), &json!(1));
    py.exec(
        "y = 5\ndef f():\n    z = 2\n    return eval('y + z')".into(),
        None,
    )
    .await;
    assert_eq!(
        value(&py.eval("f() + eval('y')".into(), None).await),
        &json!(12)
    );
}

/// A Linux node runs the Python its users know: the standard library's pure-Python modules are
/// compiled into the binary, import, and behave as in CPython (figures checked against CPython
/// 3.11 by hand: the same expressions give the same values there).
#[tokio::test]
async fn the_standard_library_imports_and_works() {
    let (_, py, _dir) = engine();
    let out = py
        .exec(
            "import os, re, json, collections, datetime, math, random, struct, hashlib\n\
             import itertools, functools, textwrap, base64, string, statistics\n\
             r = [os.path.join('a', 'b'), os.path.basename(os.path.abspath('x/y')), 'PATH' in os.environ, re.findall(r'\\d+', 'a12b345'),\n\
                  json.dumps({'a': [1, 2.5, None, True]}), json.dumps({1: 'x'}, sort_keys=True),\n\
                  json.loads('{\"k\": [1, {\"n\": null}]}'), json.loads('[1]', parse_int=str),\n\
                  collections.Counter('abracadabra').most_common(1), list(collections.deque([1, 2], maxlen=1)),\n\
                  datetime.date(2026, 12, 1).isoformat(), str(datetime.timedelta(hours=25)),\n\
                  math.gcd(12, 18), math.isclose(math.sqrt(2) ** 2, 2), random.Random(7).random() < 1,\n\
                  struct.unpack('<HI', struct.pack('<HI', 258, 65536)), hashlib.sha256(b'abc').hexdigest()[:16],\n\
                  list(itertools.accumulate([1, 2, 3])), functools.reduce(lambda a, b: a * b, [1, 2, 3, 4]),\n\
                  textwrap.shorten('hello big world', 11), base64.b64encode(b'hi').decode(), string.digits,\n\
                  statistics.median([3, 1, 2])]\n\
             print(json.dumps(r))"
                .into(),
            None,
        )
        .await;
    let printed: Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(
        printed,
        json!([
            "a/b", "y", true, ["12", "345"],
            "{\"a\": [1, 2.5, null, true]}", "{\"1\": \"x\"}",
            {"k": [1, {"n": null}]}, ["1"],
            [["a", 5]], [2],
            "2026-12-01", "1 day, 1:00:00",
            6, true, true,
            [258, 65536], "ba7816bf8f01cfea",
            [1, 3, 6], 24,
            "hello [...]", "aGk=", "0123456789",
            2
        ])
    );
    // MicroPython's names for the same modules
    assert_eq!(
        value(
            &py.eval("__import__('ujson').dumps([1, 'a'])".into(), None)
                .await
        ),
        &json!("[1, \"a\"]")
    );
    // deep nesting through any json entry point is a RecursionError, never an abort
    for code in [
        "import json, io\nx = []\nfor i in range(5000): x = [x]\njson.dump(x, io.StringIO())",
        "import json\njson.dumps([[[1]]] * 3, indent=2)\nx = {}\nfor i in range(300): x = {'a': x}\njson.dumps(x, indent=1)",
        "import json\njson.loads('[' * 5000 + ']' * 5000, parse_float=float)",
    ] {
        let err = py.exec(code.into(), None).await.result.unwrap_err();
        assert_eq!(err.kind, "RecursionError", "{code}: {err:?}");
    }
}
