//! The README's user workflow, every seed message, errors, presence and reconnects, run
//! against real processes on the embedded hub and on Mosquitto.

mod common;

use common::{repo_file, BrokerKind, Fleet};
use serde_json::Value;

const ALL_PINS_HIGH: &str =
    "[[0,1],[1,1],[2,1],[3,1],[4,1],[5,1],[12,1],[13,1],[14,1],[15,1],[16,1]]";

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn user_workflow(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let ls = f.ok(&["ls"]);
    let row = ls
        .lines()
        .find(|l| l.starts_with("pi-1"))
        .unwrap_or_else(|| panic!("pi-1 missing from ls:\n{ls}"));
    assert!(
        row.contains("online") && row.contains("sim") && row.contains("127.0.0.1"),
        "{ls}"
    );
    assert!(ls.lines().next().unwrap().starts_with("NAME"), "{ls}");

    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    assert_eq!(
        f.ok(&["exec", "pi-1", "print(\"Testing exec !\")"]),
        "Testing exec !\n"
    );
    assert_eq!(
        f.ok(&["gpio", "pi-1", "read"]),
        format!("{ALL_PINS_HIGH}\n")
    );
    assert_eq!(
        f.ok(&["gpio", "pi-1", "write", "2=0", "2=1", "2=0"]),
        "[[2,0]]\n"
    );
    assert_eq!(f.ok(&["gpio", "pi-1", "read", "2", "3"]), "[[2,0],[3,1]]\n");
    assert_eq!(
        f.ok(&["blink", "pi-1", "--times", "10", "--on", "0.05", "--off", "0.05"]),
        "blinking 10 times\n"
    );

    // The namespace persists between requests, as on an IPython engine.
    f.ok(&["exec", "pi-1", "counter = 41"]);
    assert_eq!(f.ok(&["eval", "pi-1", "counter + 1"]), "42\n");
    // machine.Pin drives the same pins the GPIO commands see.
    f.ok(&[
        "exec",
        "pi-1",
        "import machine\nmachine.Pin(4, machine.Pin.OUT).off()",
    ]);
    assert_eq!(f.ok(&["gpio", "pi-1", "read", "4"]), "[[4,0]]\n");

    assert_eq!(f.ok(&["ping", "pi-1"]), "\"pong\"\n");
    // `reset` restarts the node program: a fresh namespace, pins back to power-on values.
    assert_eq!(
        f.ok(&["send", "pi-1", r#"{"type": "command", "command": "reset"}"#]),
        "{\"resetting\":true}\n"
    );
    // The process restarts itself and comes back online (a new boot id; see hardening.rs).
    f.node_proc("pi-1").wait_contains("restarting");
    f.node_proc("pi-1").wait_contains(": online");
    let out = f.cli(&["eval", "pi-1", "counter"]);
    assert!(out.code == 1 && out.stderr.contains("NameError"), "{out:?}");
    assert_eq!(f.ok(&["gpio", "pi-1", "read", "4"]), "[[4,1]]\n");
    let info: Value = serde_json::from_str(&f.ok(&["info", "pi-1"])).unwrap();
    assert_eq!(info["name"], "pi-1");
    assert_eq!(info["platform"], "sim");
}

fn seed_messages_as_written(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let send = |msg: &str| f.ok(&["send", "pi-1", msg]);
    assert_eq!(
        send(
            r#"{"type": "command", "command": "blink led", "kwargs": {"times": 10, "forever": false, "on_seconds": 0.05, "off_seconds": 0.05}}"#
        ),
        "{\"blinking\":true}\n"
    );
    let read = send(common::SEED_READ_GPIOS);
    assert!(read.starts_with("[[0,1],[1,1],[2,"), "{read}");
    assert_eq!(send(common::SEED_WRITE_GPIOS), "[[2,0]]\n");
    assert_eq!(send(common::SEED_EVAL), "5\n");
    assert_eq!(send(common::SEED_EXEC), "Testing exec !\nnull\n");
    // The author's later field name.
    assert_eq!(
        send(r#"{"message_type": "eval", "to_evaluate": "2+3", "need_result": true}"#),
        "5\n"
    );
    let script = std::fs::read_to_string(repo_file("examples/script_to_deploy.py")).unwrap();
    let msg = serde_json::json!({"type": "script", "script": script}).to_string();
    assert_eq!(send(&msg), "{\"name\":\"main\",\"started\":true}\n");
    let stopped = f.ok(&["stop", "pi-1"]);
    assert!(stopped.contains("stopped: main"), "{stopped}");
    // Fire and forget, as the seed's client.request without need_result.
    let out = f.ok(&[
        "send",
        "--no-wait",
        "pi-1",
        r#"{"type": "exec", "to_exec": "fired = True"}"#,
    ]);
    assert!(out.starts_with("sent "), "{out}");
    assert_eq!(f.ok(&["eval", "pi-1", "fired"]), "true\n");
}

fn falsy_results_come_back_intact(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    for (expr, shown) in [
        ("0", "0"),
        ("[]", "[]"),
        ("False", "false"),
        ("''", "\"\""),
        ("None", "null"),
        ("{}", "{}"),
        ("0.0", "0.0"),
    ] {
        assert_eq!(
            f.ok(&["eval", "pi-1", expr]),
            format!("{shown}\n"),
            "eval {expr}"
        );
        let line = &json_lines(&f.ok(&["--json", "eval", "pi-1", expr]))[0];
        assert_eq!(line["ok"], true);
        assert!(line.as_object().unwrap().contains_key("result"), "{line}");
    }
    // Values JSON cannot hold come back as their repr, flagged.
    let line = &json_lines(&f.ok(&["--json", "eval", "pi-1", "{1, 2}"]))[0];
    assert_eq!(
        (line["result"].as_str(), line["repr"].as_bool()),
        (Some("{1, 2}"), Some(true))
    );
    assert_eq!(f.ok(&["eval", "pi-1", "(1, 'a')"]), "[1,\"a\"]\n");
}

fn errors_carry_type_message_and_traceback(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let out = f.cli(&["eval", "pi-1", "1/0"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("Traceback (most recent call last)"),
        "{out:?}"
    );
    assert!(out.stderr.contains("ZeroDivisionError"), "{out:?}");
    let out = f.cli(&["exec", "pi-1", "print('before')\nraise ValueError('boom')"]);
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stdout, "before\n",
        "output printed before the error still arrives"
    );
    assert!(out.stderr.contains("ValueError: boom"), "{out:?}");
    let line = &json_lines(&f.cli(&["--json", "eval", "pi-1", "undefined_name"]).stdout)[0];
    assert_eq!(line["ok"], false);
    assert_eq!(line["error"]["kind"], "NameError");
    assert!(
        line["error"]["traceback"]
            .as_str()
            .unwrap()
            .contains("<eval>"),
        "{line}"
    );
    let out = f.cli(&["eval", "pi-1", "2 +"]);
    assert!(
        out.code == 1 && out.stderr.contains("SyntaxError"),
        "{out:?}"
    );
    // Refusals by the protocol layer are error replies too.
    let out = f.cli(&["send", "pi-1", r#"{"type": "teleport"}"#]);
    assert!(
        out.code == 1 && out.stderr.contains("UnknownType"),
        "{out:?}"
    );
    let out = f.cli(&["send", "pi-1", r#"{"type": "command", "command": "fly"}"#]);
    assert!(
        out.code == 1 && out.stderr.contains("unknown command `fly`"),
        "{out:?}"
    );
    let out = f.cli(&["gpio", "pi-1", "write", "7=1"]);
    assert!(
        out.code == 1 && out.stderr.contains("pin 7 does not exist"),
        "{out:?}"
    );
    // The node is still there, and nothing ran twice or went missing.
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
}

fn files_functions_and_imports(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let functions = repo_file("examples/functions.py");
    let out = f.ok(&["cp", functions.to_str().unwrap(), "pi-1:functions.py"]);
    assert!(
        out.contains("functions.py") && out.contains("verified"),
        "{out}"
    );
    f.ok(&["exec", "pi-1", "import functions"]);
    assert_eq!(
        f.ok(&["call", "pi-1", "functions.add", r#"{"a":2,"b":3}"#]),
        "5\n"
    );
    assert_eq!(f.ok(&["call", "pi-1", "functions.add", "[20, 22]"]), "42\n");
    assert_eq!(f.ok(&["call", "pi-1", "functions.led", "[true]"]), "true\n");
    assert_eq!(f.ok(&["gpio", "pi-1", "read", "2"]), "[[2,0]]\n");
    // A 300 KB binary file travels in chunks and lands byte for byte.
    let big: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = f.dir.path().join("big.bin");
    std::fs::write(&local, &big).unwrap();
    f.ok(&["cp", local.to_str().unwrap(), "pi-1:data/big.bin"]);
    assert_eq!(
        std::fs::read(f.root_of("pi-1").join("data/big.bin")).unwrap(),
        big
    );
    let listing = f.ok(&[
        "send",
        "pi-1",
        r#"{"type": "command", "command": "list files"}"#,
    ]);
    assert!(
        listing.contains("[\"data/big.bin\",300000]") && listing.contains("functions.py"),
        "{listing}"
    );
    // Paths cannot leave the node's root.
    for bad in ["../../etc/passwd", "/etc/passwd", ".hidden"] {
        let out = f.cli(&["cp", functions.to_str().unwrap(), &format!("pi-1:{bad}")]);
        assert!(
            out.code != 0 && out.stderr.contains("invalid path"),
            "{bad}: {out:?}"
        );
        let raw =
            serde_json::json!({"type": "file", "filename": bad, "content": "pwned"}).to_string();
        let out = f.cli(&["send", "pi-1", &raw]);
        assert!(
            out.code == 1 && out.stderr.contains("BadPath"),
            "{bad}: {out:?}"
        );
    }
    assert!(!f.dir.path().join("etc").exists());
    let out = f.cli(&[
        "send",
        "pi-1",
        r#"{"type": "command", "command": "remove file", "kwargs": {"filename": "functions.py"}}"#,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!f.root_of("pi-1").join("functions.py").exists());
}

fn script_deploy_output_and_stop(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let watch = f.watch();
    f.ok(&["exec", "pi-1", "kept = 'still here'"]);
    let script = repo_file("examples/script_to_deploy.py");
    assert_eq!(
        f.ok(&["run", "pi-1", script.to_str().unwrap()]),
        "script `script_to_deploy` started\n"
    );
    watch.wait_contains("testing remote deploy");
    watch.wait_contains("deployed from remote");
    // The seed's loop drives the LED on its own: pin 2 is seen low and then high.
    for want in ["[[2,0]]", "[[2,1]]"] {
        let deadline = std::time::Instant::now() + common::WAIT;
        while f.ok(&["gpio", "pi-1", "read", "2"]).trim() != want {
            assert!(
                std::time::Instant::now() < deadline,
                "LED never read {want}"
            );
        }
    }
    let info: Value = serde_json::from_str(&f.ok(&["info", "pi-1"])).unwrap();
    assert_eq!(info["scripts"], serde_json::json!(["script_to_deploy"]));
    assert_eq!(f.ok(&["stop", "pi-1"]), "stopped: script_to_deploy\n");
    watch.wait_contains("stopped");
    let info: Value = serde_json::from_str(&f.ok(&["info", "pi-1"])).unwrap();
    assert_eq!(info["scripts"], serde_json::json!([]));
    // Stopped without restarting the node: its namespace survived.
    assert_eq!(f.ok(&["eval", "pi-1", "kept"]), "\"still here\"\n");
    // A crashing script is reported on the log topic and the node carries on; `run` itself
    // reports a crash in the script's first second, traceback and all, and exits 1.
    let crash = f.dir.path().join("crash.py");
    std::fs::write(&crash, "print('about to fail')\n1/0\n").unwrap();
    let out = f.cli(&["run", "pi-1", crash.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "script `crash` started\n", "{out:?}");
    assert!(
        out.stderr.starts_with("script `crash` crashed:\nTraceback")
            && out.stderr.contains("ZeroDivisionError"),
        "{out:?}"
    );
    let line = watch.wait_contains("crashed");
    assert!(line.contains("ZeroDivisionError"), "{line}");
    assert_eq!(f.ok(&["eval", "pi-1", "1+1"]), "2\n");
    // --follow prints the script's output until it ends: exit 0 when it finished, 1 when it
    // crashed (after its output).
    let counts = f.dir.path().join("counts.py");
    std::fs::write(
        &counts,
        "import time\nfor i in range(3):\n    print('count', i)\n    time.sleep(0.05)\n",
    )
    .unwrap();
    let out = f.cli(&["run", "pi-1", counts.to_str().unwrap(), "--follow"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout, "script `counts` started\ncount 0\ncount 1\ncount 2\n",
        "{out:?}"
    );
    assert_eq!(out.stderr, "script `counts` finished\n", "{out:?}");
    let out = f.cli(&["run", "pi-1", crash.to_str().unwrap(), "-f"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stdout, "script `crash` started\nabout to fail\n",
        "{out:?}"
    );
    assert!(out.stderr.contains("ZeroDivisionError"), "{out:?}");
    // Deploying under a running script's name replaces it.
    let looping = f.dir.path().join("loop.py");
    std::fs::write(&looping, "import time\nwhile True:\n    time.sleep(0.01)\n").unwrap();
    f.ok(&["run", "pi-1", looping.to_str().unwrap(), "--name", "worker"]);
    watch.wait_line(
        |l| l.contains("script:worker") && l.contains("\"text\":\"started\""),
        "worker started",
    );
    f.ok(&["run", "pi-1", looping.to_str().unwrap(), "--name", "worker"]);
    // The first run really ended: the replacement stopped it before starting.
    watch.wait_line(
        |l| l.contains("script:worker") && l.contains("\"text\":\"stopped\""),
        "first worker stopped",
    );
    let info: Value = serde_json::from_str(&f.ok(&["info", "pi-1"])).unwrap();
    assert_eq!(info["scripts"], serde_json::json!(["worker"]));
    assert_eq!(
        f.ok(&["stop", "pi-1", "--name", "worker"]),
        "stopped: worker\n"
    );
}

fn node_to_node_from_a_deployed_script(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("alpha", &[]);
    f.node("beta", &[]);
    let watch = f.watch();
    let script = f.dir.path().join("ask.py");
    std::fs::write(
        &script,
        "import plastic\n\
         answer = plastic.request('beta', {'type': 'eval', 'to_evaluate': '6*7', 'need_result': True}, timeout=5)\n\
         plastic.publish('answer', {'from': plastic.name, 'answer': answer})\n\
         try:\n    plastic.request('beta', {'type': 'eval', 'to_evaluate': '1/0'})\n\
         except plastic.RemoteError as e:\n    print('remote failed with', e.kind)\n",
    )
    .unwrap();
    f.ok(&["run", "alpha", script.to_str().unwrap()]);
    let event: Value = serde_json::from_str(&watch.wait_contains("\"kind\":\"event\"")).unwrap();
    assert_eq!(event["node"], "alpha");
    assert_eq!(event["topic"], "answer");
    assert_eq!(
        event["data"],
        serde_json::json!({"from": "alpha", "answer": 42})
    );
    watch.wait_contains("remote failed with ZeroDivisionError");
}

fn many_targets(kind: BrokerKind) {
    let f = Fleet::new(kind);
    let mut sim = common::plastic();
    sim.args([
        "sim",
        "--nodes",
        "3",
        "--group",
        "lab",
        "--broker",
        &f.broker.url(),
    ])
    .arg("--root")
    .arg(f.dir.path().join("sim"));
    let sim = common::Proc::spawn(sim, "plastic sim");
    sim.wait_contains("3 nodes online");
    let expected = "sim-1: \"sim-1\"\nsim-2: \"sim-2\"\nsim-3: \"sim-3\"\n";
    let who = "__import__('plastic').name";
    assert_eq!(f.ok(&["eval", "sim-*", who]), expected);
    assert_eq!(f.ok(&["eval", "all", who]), expected);
    assert_eq!(f.ok(&["eval", "group:lab", who]), expected);
    assert_eq!(f.ok(&["eval", "sim-1,sim-3", "1"]), "sim-1: 1\nsim-3: 1\n");
    let lines = json_lines(&f.ok(&["--json", "eval", "sim-*", "2+3"]));
    assert_eq!(lines.len(), 3);
    assert!(
        lines.iter().all(|l| l["ok"] == true && l["result"] == 5),
        "{lines:?}"
    );
    // One failure among several: the others still answer, the exit status says it.
    let out = f.cli(&["eval", "sim-1,ghost", "1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "sim-1: 1\n");
    assert!(out.stderr.contains("ghost: error: unknown node"), "{out:?}");
    let out = f.cli(&[
        "eval",
        "sim-*",
        "1/0 if __import__('plastic').name == 'sim-2' else 1",
    ]);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "sim-1: 1\nsim-3: 1\n");
    assert!(out.stderr.contains("sim-2: ZeroDivisionError"), "{out:?}");
    let functions = repo_file("examples/functions.py");
    let out = f.ok(&["cp", functions.to_str().unwrap(), "group:lab:functions.py"]);
    assert_eq!(out.matches("verified").count(), 3, "{out}");
    assert_eq!(
        f.ok(&["call", "all", "functions.add", "[1, 1]"]),
        "sim-1: 2\nsim-2: 2\nsim-3: 2\n"
    );
}

fn presence_online_offline_lost(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    let watch = f.watch();
    f.node("calm", &["lab"]);
    f.node("doomed", &[]);
    watch.wait_line(
        |l| l.contains("\"node\":\"doomed\"") && l.contains("online"),
        "doomed online",
    );
    f.node_proc("calm").terminate();
    watch.wait_line(
        |l| l.contains("\"node\":\"calm\"") && l.contains("offline"),
        "calm offline",
    );
    f.node_proc("doomed").kill();
    watch.wait_line(
        |l| l.contains("\"node\":\"doomed\"") && l.contains("lost"),
        "doomed lost",
    );
    let nodes = json_lines(&f.ok(&["--json", "ls"]));
    let state = |n: &str| {
        nodes
            .iter()
            .find(|p| p["name"] == n)
            .map(|p| p["state"].clone())
    };
    assert_eq!(state("calm"), Some("offline".into()));
    assert_eq!(state("doomed"), Some("lost".into()));
    assert_eq!(
        nodes.iter().find(|p| p["name"] == "calm").unwrap()["groups"],
        serde_json::json!(["lab"])
    );
    // Requests to a node that is not online fail at once with the reason.
    let out = f.cli(&["eval", "doomed", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("node doomed is lost"),
        "{out:?}"
    );
}

fn reconnects_after_broker_restart(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    f.ok(&["exec", "pi-1", "state = 'kept across the outage'"]);
    f.broker.restart();
    // The node reconnects on its own, subscribes again and announces itself again.
    f.node_proc("pi-1").wait_contains("online");
    assert_eq!(
        f.ok(&["eval", "pi-1", "state"]),
        "\"kept across the outage\"\n"
    );
    assert!(f.ok(&["ls"]).contains("online"));
}

fn third_party_client_and_hostile_input(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let watch = f.watch();
    let replies = f.mosquitto_sub("plastic/tester/in");
    // A plain MQTT client speaks the protocol with nothing but JSON.
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "eval", "to_evaluate": "2+3", "need_result": true, "message_id": "m-1", "sender": "tester"}"#,
    );
    let reply: Value =
        serde_json::from_str(&replies.wait_contains("\"correlation_id\":\"m-1\"")).unwrap();
    assert_eq!(
        (
            reply["ok"].clone(),
            reply["result"].clone(),
            reply["sender"].clone()
        ),
        (true.into(), 5.into(), "pi-1".into())
    );
    // A seed dict with no envelope: the reply has nowhere to go but the log topic.
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "eval", "to_evaluate": "2+3", "need_result": true}"#,
    );
    let logged = watch.wait_contains("\\\"correlation_id\\\":\\\"\\\"");
    assert!(logged.contains("\\\"result\\\":5"), "{logged}");
    // Garbage and hostile payloads: refused, logged, nothing dies.
    f.mosquitto_pub("plastic/pi-1/in", b"{not json");
    watch.wait_contains("refused a message (ProtocolError): malformed JSON");
    // A broken reply is logged, never answered (two nodes could answer each other forever).
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "result", "correlation_id": 5, "message_id": "m-r", "sender": "tester"}"#,
    );
    watch.wait_contains("refused a message (ProtocolError)");
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "eval", "to_evaluate": "1", "need_result": true, "message_id": "m-3", "sender": "tester"}"#,
    );
    let next = replies.wait_line(|l| l.contains("m-3") || l.contains("m-r"), "a reply");
    assert!(
        next.contains("\"correlation_id\":\"m-3\""),
        "the broken result got an answer: {next}"
    );
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    f.mosquitto_pub("plastic/pi-1/in", deep.as_bytes());
    watch.wait_contains("recursion limit");
    let huge = format!(
        "{{\"type\": \"exec\", \"need_result\": true, \"message_id\": \"m-big\", \"sender\": \"tester\", \"to_exec\": \"{}\"}}",
        "x".repeat(300_000)
    );
    f.mosquitto_pub("plastic/pi-1/in", huge.as_bytes());
    let reply: Value =
        serde_json::from_str(&replies.wait_contains("\"correlation_id\":\"m-big\"")).unwrap();
    assert_eq!(reply["error"]["kind"], "PayloadTooLarge");
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "exec", "to_exec": "1/0", "message_id": "m-2", "sender": "tester"}"#,
    );
    let reply: Value =
        serde_json::from_str(&replies.wait_contains("\"correlation_id\":\"m-2\"")).unwrap();
    assert_eq!(
        reply["error"]["kind"], "ZeroDivisionError",
        "errors are answered even without need_result"
    );
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
}

/// On Mosquitto, a `plastic hub` that runs only its registry against it (the embedded fleet
/// has its hub already).
fn external_hub(f: &Fleet, kind: BrokerKind) -> Option<common::Proc> {
    (kind == BrokerKind::Mosquitto).then(|| {
        let mut hub = common::plastic();
        hub.args(["hub", "--external", "--broker", &f.broker.url()]);
        let hub = common::Proc::spawn(hub, "plastic hub --broker");
        hub.wait_contains("using the external broker");
        hub
    })
}

fn hub_console_lists_nodes(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    let external = external_hub(&f, kind);
    f.node("pi-1", &[]);
    let (_, mut node) = f.nodes.pop().expect("started above");
    let console = external.as_ref().unwrap_or_else(|| f.broker.console());
    console.wait_line(
        |l| l.contains("node pi-1 online"),
        "pi-1 online on the hub console",
    );
    node.kill();
    console.wait_line(
        |l| l.contains("node pi-1 lost"),
        "pi-1 lost on the hub console",
    );
}

fn bad_command_lines_are_refused_clearly(kind: BrokerKind) {
    let f = Fleet::new(kind);
    for (args, needle) in [
        (vec!["node", "--name", "a/b"], "invalid name `a/b`"),
        (vec!["node", "--name", "x+"], "invalid name"),
        (vec!["eval", "bad#name", "1"], "invalid name"),
        (vec!["gpio", "pi-1", "write", "2=7"], "VALUE 0 or 1"),
        (vec!["send", "pi-1", "{not json"], "not valid JSON"),
        (vec!["send", "pi-1", "[1]"], "must be a JSON object"),
        (vec!["cp", "/nonexistent/file", "pi-1:x.py"], "cannot read"),
        (vec!["cp", "Cargo.toml", "no-colon"], "TARGET:PATH"),
        (vec!["--timeout=-1", "eval", "pi-1", "1"], "--timeout"),
        (
            vec!["--broker", "http://127.0.0.1:1", "ls"],
            "unknown scheme",
        ),
    ] {
        let out = f.cli(&args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(needle),
            "{args:?} should say {needle:?}: {out:?}"
        );
    }
    let out = f.cli(&["eval", "nobody", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("unknown node `nobody`"),
        "{out:?}"
    );
}

fn a_long_exec_never_blocks_ping(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let watch = f.watch();
    let mut slow = common::plastic();
    slow.args([
        "--timeout",
        "60",
        "exec",
        "pi-1",
        "import time, plastic\nplastic.publish('busy', 1)\ntime.sleep(30)",
    ])
    .env("PLASTIC_BROKER", f.broker.url());
    let _slow = common::Proc::spawn(slow, "slow exec");
    watch.wait_contains("\"topic\":\"busy\"");
    // Python is busy for 30 s; the node's message loop is not.
    assert_eq!(f.ok(&["--timeout", "5", "ping", "pi-1"]), "\"pong\"\n");
    assert_eq!(
        f.ok(&["--timeout", "5", "gpio", "pi-1", "read", "2"]),
        "[[2,1]]\n"
    );
}

fn duplicates_run_once_and_stale_requests_do_not_run(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    f.ok(&["exec", "pi-1", "runs = 0"]);
    let replies = f.mosquitto_sub("plastic/tester/in");
    // QoS 1 may deliver a request twice; the node runs it once and answers both with the first reply.
    let request = br#"{"type": "exec", "to_exec": "runs += 1", "need_result": true, "message_id": "dup-1", "sender": "tester"}"#;
    f.mosquitto_pub("plastic/pi-1/in", request);
    let first = replies.wait_contains("\"correlation_id\":\"dup-1\"");
    f.mosquitto_pub("plastic/pi-1/in", request);
    let second = replies.wait_contains("\"correlation_id\":\"dup-1\"");
    assert_eq!(first, second, "the duplicate gets the very same reply");
    assert_eq!(f.ok(&["eval", "pi-1", "runs"]), "1\n");
    // A request whose time to live ran out is refused, not run late.
    let out = f.cli(&["--ttl", "0.000001", "exec", "pi-1", "runs += 100"]);
    assert!(out.code == 1 && out.stderr.contains("Expired"), "{out:?}");
    assert_eq!(f.ok(&["eval", "pi-1", "runs"]), "1\n");
    assert_eq!(f.ok(&["--ttl", "30", "eval", "pi-1", "runs"]), "1\n");
}

fn a_node_lost_mid_request_is_a_definite_outcome(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let watch = f.watch();
    let mut slow = common::plastic();
    slow.args([
        "--timeout",
        "120",
        "exec",
        "pi-1",
        "import time, plastic\nplastic.publish('busy', 1)\ntime.sleep(60)",
    ])
    .env("PLASTIC_BROKER", f.broker.url());
    let mut slow = common::Proc::spawn(slow, "slow exec");
    watch.wait_contains("\"topic\":\"busy\"");
    f.node_proc("pi-1").kill();
    // Told at once, not after the 120 s timeout.
    slow.wait_contains("node pi-1 went lost before answering");
    let status = slow.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
}

fn downloads_and_directories(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let blob: Vec<u8> = (0..70_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = f.dir.path().join("blob.bin");
    std::fs::write(&local, &blob).unwrap();
    f.ok(&["cp", local.to_str().unwrap(), "pi-1:data/blob.bin"]);
    // Down again, in chunks, into a file and into a folder.
    let back = f.dir.path().join("back.bin");
    let out = f.ok(&["cp", "pi-1:data/blob.bin", back.to_str().unwrap()]);
    assert!(
        out.starts_with("data/blob.bin: 70000 bytes, sha256 ") && out.contains("verified"),
        "{out}"
    );
    assert_eq!(std::fs::read(&back).unwrap(), blob);
    let folder = f.dir.path().join("folder");
    std::fs::create_dir(&folder).unwrap();
    f.ok(&[
        "cp",
        "pi-1:data/blob.bin",
        folder.to_str().unwrap(),
        "--chunk-size",
        "5000",
    ]);
    assert_eq!(std::fs::read(folder.join("blob.bin")).unwrap(), blob);
    // A download cut earlier resumes from its .part; a .part of something else starts afresh.
    let resumed = f.dir.path().join("resumed.bin");
    std::fs::write(f.dir.path().join("resumed.bin.part"), &blob[..30_000]).unwrap();
    let out = f.ok(&["cp", "pi-1:data/blob.bin", resumed.to_str().unwrap()]);
    assert!(out.contains("(resumed at byte 30000)"), "{out}");
    assert_eq!(std::fs::read(&resumed).unwrap(), blob);
    let stale = f.dir.path().join("stale.bin");
    std::fs::write(f.dir.path().join("stale.bin.part"), vec![0u8; 30_000]).unwrap();
    let out = f.ok(&["cp", "pi-1:data/blob.bin", stale.to_str().unwrap()]);
    assert!(!out.contains("resumed"), "{out}");
    assert_eq!(std::fs::read(&stale).unwrap(), blob);
    assert!(!f.dir.path().join("stale.bin.part").exists());
    // A `.part` that is a link is never written through (its target would be truncated).
    let victim = f.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let linked = f.dir.path().join("linked.bin");
    std::os::unix::fs::symlink(&victim, f.dir.path().join("linked.bin.part")).unwrap();
    let out = f.cli(&["cp", "pi-1:data/blob.bin", linked.to_str().unwrap()]);
    assert!(
        out.code == 1 && out.stderr.contains("symbolic link"),
        "{out:?}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!linked.exists());
    // cat: the bytes on stdout.
    std::fs::write(f.dir.path().join("notes.txt"), "line 1\nline 2\n").unwrap();
    f.ok(&[
        "cp",
        f.dir.path().join("notes.txt").to_str().unwrap(),
        "pi-1:notes.txt",
    ]);
    assert_eq!(
        f.ok(&["fs", "pi-1", "cat", "notes.txt"]),
        "line 1\nline 2\n"
    );
    // What cannot be downloaded says why and leaves nothing behind.
    let nothing = f.dir.path().join("nothing.txt");
    let out = f.cli(&["cp", "pi-1:nope.txt", nothing.to_str().unwrap()]);
    assert!(
        out.code == 1 && out.stderr.contains("FileNotFoundError"),
        "{out:?}"
    );
    assert!(!nothing.exists() && !f.dir.path().join("nothing.txt.part").exists());
    let out = f.cli(&["fs", "pi-1", "cat", "data"]);
    assert!(
        out.code == 1 && out.stderr.contains("IsADirectoryError"),
        "{out:?}"
    );
    std::os::unix::fs::symlink("/etc/passwd", f.root_of("pi-1").join("passwd")).unwrap();
    let out = f.cli(&["fs", "pi-1", "cat", "passwd"]);
    assert!(
        out.code == 1 && out.stdout.is_empty() && out.stderr.contains("symbolic link"),
        "{out:?}"
    );
    for bad in ["../etc/passwd", ".hidden", "/etc/passwd"] {
        let out = f.cli(&["fs", "pi-1", "cat", bad]);
        assert!(
            out.code != 0 && out.stderr.contains("invalid path"),
            "{bad}: {out:?}"
        );
    }
    let out = f.cli(&["cp", "pi-*:notes.txt", nothing.to_str().unwrap()]);
    assert!(
        out.code != 0 && out.stderr.contains("one node at a time"),
        "{out:?}"
    );
    // Directories.
    assert_eq!(f.ok(&["fs", "pi-1", "mkdir", "logs"]), "made logs\n");
    assert!(f.root_of("pi-1").join("logs").is_dir());
    for (args, kind) in [
        (["fs", "pi-1", "mkdir", "logs"], "FileExistsError"),
        (["fs", "pi-1", "mkdir", "no/such"], "FileNotFoundError"),
        (["fs", "pi-1", "rmdir", "data"], "OSError"),
        (["fs", "pi-1", "rmdir", "notes.txt"], "NotADirectoryError"),
    ] {
        let out = f.cli(&args);
        assert!(
            out.code == 1 && out.stderr.contains(kind),
            "{args:?}: {out:?}"
        );
    }
    assert_eq!(f.ok(&["fs", "pi-1", "rmdir", "logs"]), "removed logs\n");
    assert!(!f.root_of("pi-1").join("logs").exists());
    // A folder goes up with -r: regular files only; a link (to /etc here) and a hidden file
    // are skipped and named, never followed.
    let lib = f.dir.path().join("lib");
    std::fs::create_dir_all(lib.join("sub")).unwrap();
    std::fs::write(lib.join("a.py"), "A = 1\n").unwrap();
    std::fs::write(lib.join("sub/b.py"), "B = 2\n").unwrap();
    std::fs::write(lib.join(".secret"), "no\n").unwrap();
    std::os::unix::fs::symlink("/etc", lib.join("etc")).unwrap();
    let out = f.cli(&["cp", "-r", lib.to_str().unwrap(), "pi-1:lib"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("lib/a.py: 6 bytes") && out.stdout.contains("lib/sub/b.py: 6 bytes"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("etc: a symbolic link") && out.stderr.contains(".secret: not a name"),
        "{out:?}"
    );
    let listing = f.ok(&["fs", "pi-1", "ls"]);
    assert!(
        listing.contains("lib/a.py") && listing.contains("lib/sub/b.py"),
        "{listing}"
    );
    assert!(
        !listing.contains("passwd") && !listing.contains("secret"),
        "{listing}"
    );
    assert_eq!(
        f.ok(&["eval", "pi-1", "__import__('lib.sub.b').sub.b.B"]),
        "2\n"
    );
    let out = f.cli(&["cp", lib.to_str().unwrap(), "pi-1:lib2"]);
    assert!(
        out.code != 0 && out.stderr.contains("copy it with -r"),
        "{out:?}"
    );
}

fn logs_kept_by_the_hub(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    // The registry keeps the tails, on Mosquitto too.
    let _external = external_hub(&f, kind);
    f.node("pi-1", &[]);
    let tail = f.mosquitto_sub("plastic/pi-1/log/recent");
    // Nobody watches while the script prints and crashes; the hub keeps it.
    let crash = f.dir.path().join("chatty.py");
    std::fs::write(&crash, "for i in range(30):\n    print('tick', i)\n1/0\n").unwrap();
    assert_eq!(f.cli(&["run", "pi-1", crash.to_str().unwrap()]).code, 1);
    tail.wait_contains("ZeroDivisionError");
    // A broker may hand a new subscriber the retained tail before the one just delivered to
    // existing subscribers (rmqtt stores it a moment later): read until `logs` shows it.
    let logs_until = |args: &[&str], needle: &str| -> String {
        let deadline = std::time::Instant::now() + common::WAIT;
        loop {
            let out = f.ok(args);
            if out.contains(needle) {
                return out;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never {needle:?}: {out}"
            );
        }
    };
    let out = logs_until(&["logs", "pi-1", "-n", "3"], "ZeroDivisionError");
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("[script:chatty]"))
        .collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].ends_with("tick 28") && lines[1].ends_with("tick 29"),
        "{out}"
    );
    assert!(
        lines[2].contains("crashed:") && out.contains("ZeroDivisionError"),
        "{out}"
    );
    let all = f.ok(&["--json", "logs", "pi-1", "-n", "1000"]);
    let first: serde_json::Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
    assert_eq!(first["node"], "pi-1", "{all}");
    assert!(
        all.contains("\"text\":\"tick 0\""),
        "the whole run is kept: {all}"
    );
    assert_eq!(
        f.ok(&["logs", "pi-1", "--since", "0s"]),
        "",
        "nothing newer than now"
    );
    let out = f.cli(&["logs", "pi-1", "--since", "ten minutes"]);
    assert!(
        out.code == 2 && out.stderr.contains("--since takes"),
        "{out:?}"
    );
    // Events are kept beside the lines, and -f follows what comes next.
    f.ok(&[
        "exec",
        "pi-1",
        "import plastic\nplastic.publish('temp', {'c': 21})",
    ]);
    tail.wait_contains("event:temp");
    logs_until(&["logs", "pi-1", "-n", "1"], "[event:temp] {\"c\":21}");
    let mut follow = common::plastic();
    follow
        .args(["logs", "pi-1", "-f", "-n", "0"])
        .env("PLASTIC_BROKER", f.broker.url());
    let follow = common::Proc::spawn(follow, "plastic logs -f");
    follow.wait_contains("following pi-1");
    let script = f.dir.path().join("hello.py");
    std::fs::write(&script, "print('hello, follower')\n").unwrap();
    f.ok(&["run", "pi-1", script.to_str().unwrap()]);
    follow.wait_contains("[script:hello] hello, follower");
    // A node no hub has seen: said on stderr, nothing on stdout.
    let out = f.cli(&["logs", "nobody"]);
    assert!(
        out.code == 0 && out.stdout.is_empty() && out.stderr.contains("no recent log"),
        "{out:?}"
    );
}

on_both_brokers!(
    logs_kept_by_the_hub,
    downloads_and_directories,
    a_node_lost_mid_request_is_a_definite_outcome,
    duplicates_run_once_and_stale_requests_do_not_run,
    a_long_exec_never_blocks_ping,
    user_workflow,
    seed_messages_as_written,
    falsy_results_come_back_intact,
    errors_carry_type_message_and_traceback,
    files_functions_and_imports,
    script_deploy_output_and_stop,
    node_to_node_from_a_deployed_script,
    many_targets,
    presence_online_offline_lost,
    reconnects_after_broker_restart,
    third_party_client_and_hostile_input,
    hub_console_lists_nodes,
    bad_command_lines_are_refused_clearly,
);

/// The README's first command: the seed's demo on an embedded hub and three simulated nodes.
#[test]
fn demo_runs_the_seed_end_to_end() {
    let out = common::plastic()
        .arg("demo")
        .env_remove("PLASTIC_BROKER")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for step in [
        "-> 5",
        "| Testing exec !",
        "\"started\":true",
        "\"stopped\":[\"main\"]",
        "$ plastic eval demo-1 '2+3'",
        "seed: client.request(\"demo-1\", {\"need_result\":true,\"to_evaluate\":\"2+3\",\"type\":\"eval\"})",
        "| demo-2 answered 5",
        "demo complete",
    ] {
        assert!(
            stdout.contains(step),
            "demo output lacks {step:?}:\n{stdout}"
        );
    }
}

/// docs/reliability.md / protocol.md: a node that is `lost` when a request is made gets 3 s to
/// come back `online` before the CLI gives up with `NodeNotOnline`; one that is back in time
/// gets the request. On Mosquitto, whose log shows when the CLI has its answer to the presence
/// sync (the marker delivered to its own inbox), so the node restarts while the CLI waits.
#[test]
fn a_lost_node_back_within_3_s_gets_the_request() {
    let mut f = Fleet::new(BrokerKind::Mosquitto);
    f.node("blip", &[]);
    f.node_proc("blip").kill();
    f.broker
        .console()
        .wait_contains("Client blip closed its connection");
    let mut eval = common::plastic();
    eval.args(["--json", "eval", "blip", "6*7"])
        .env("PLASTIC_BROKER", f.broker.url());
    let eval = common::Proc::spawn(eval, "eval blip");
    f.broker.console().wait_line(
        |l| l.contains("Sending PUBLISH to cli-") && l.contains("/in'"),
        "the CLI's sync marker delivered",
    );
    f.node("blip", &[]);
    let line = eval.wait_line(|l| l.starts_with('{'), "the eval's result");
    let reply: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (reply["ok"].clone(), reply["result"].clone()),
        (true.into(), 42.into()),
        "{line}"
    );
    // Not `NodeNotOnline`: the CLI waited for the node and sent the request.
}

/// docs/security.md ("Limits"): the embedded hub refuses a message over 1 MiB (its maximum
/// packet size): the publisher is disconnected and the node never sees it. One just under the
/// limit does reach the node, which refuses it itself (`PayloadTooLarge`, over 256 KiB).
#[test]
fn the_hub_refuses_a_message_over_1_mib() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    f.node("big-1", &[]);
    f.ok(&["exec", "big-1", "hits = 0"]);
    let replies = f.mosquitto_sub("plastic/tester/in");
    let request = |id: &str, size: usize| {
        let head = format!(
            r#"{{"type": "exec", "to_execute": "hits += 1", "need_result": true, "message_id": "{id}", "sender": "tester", "pad": ""#
        );
        let mut payload = head.into_bytes();
        payload.resize(size - 2, b'x');
        payload.extend_from_slice(b"\"}");
        assert_eq!(payload.len(), size);
        payload
    };
    // Under the broker's limit (topic and headers included): delivered, refused by the node.
    f.mosquitto_pub("plastic/big-1/in", &request("under", 1024 * 1024 - 1024));
    let reply: Value =
        serde_json::from_str(&replies.wait_contains("\"correlation_id\":\"under\"")).unwrap();
    assert_eq!(reply["error"]["kind"], "PayloadTooLarge", "{reply}");
    // Over it: the broker closes the publisher's connection; nothing is delivered.
    let file = f.dir.path().join("over-1-mib");
    std::fs::write(&file, request("over", 1024 * 1024 + 1)).unwrap();
    let out = std::process::Command::new(common::which("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &f.broker.port.to_string()])
        .args(["-q", "1", "-t", "plastic/big-1/in", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "mosquitto_pub of 1 MiB + 1 succeeded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A small request after it is answered, and nothing else came in between.
    f.mosquitto_pub(
        "plastic/big-1/in",
        br#"{"type": "eval", "to_evaluate": "hits", "need_result": true, "message_id": "after", "sender": "tester"}"#,
    );
    let reply: Value =
        serde_json::from_str(&replies.wait_contains("\"correlation_id\":\"after\"")).unwrap();
    assert_eq!(reply["result"], 0, "{reply}");
    assert!(
        !replies
            .output_so_far()
            .contains("\"correlation_id\":\"over\""),
        "the node answered the message over 1 MiB"
    );
}

/// `plastic repl` on a terminal (a pseudo-terminal from util-linux's `script`): the prompt
/// names the node, an expression prints its value, Ctrl-C interrupts the code running on the
/// node, Ctrl-D leaves with 0, and the input lands in the history file.
#[test]
fn repl_on_a_terminal() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let mut f = Fleet::new(BrokerKind::Embedded);
    f.node("pi-1", &[]);
    let home = f.dir.path().join("home");
    let plastic = env!("CARGO_BIN_EXE_plastic");
    let mut child = std::process::Command::new(common::which("script"))
        // `exec`: `script` runs the command through $SHELL, and dash (Debian's /bin/sh) forks
        // instead of replacing itself; the terminal's SIGINT would then end the shell.
        .args(["-qec", &format!("exec {plastic} repl pi-1"), "/dev/null"])
        .env("PLASTIC_BROKER", f.broker.url())
        .env("PLASTIC_HOME", &home)
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let mut wait_for = |needle: &str| {
        let deadline = std::time::Instant::now() + common::WAIT;
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(_) => panic!("no {needle:?} on the terminal; it shows: {seen:?}"),
            }
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    wait_for("pi-1>>> ");
    stdin.write_all(b"x = 6\r").unwrap();
    stdin.write_all(b"x * 7\r").unwrap();
    wait_for("42");
    // Ctrl-C while the node runs something: the node's own KeyboardInterrupt comes back, and
    // the session goes on.
    let watch = f.watch();
    stdin
        .write_all(b"import plastic, time; plastic.publish('sleeping', 1); time.sleep(60)\r")
        .unwrap();
    watch.wait_contains("\"topic\":\"sleeping\"");
    stdin.write_all(b"\x03").unwrap();
    wait_for("KeyboardInterrupt");
    stdin.write_all(b"x + 1000\r").unwrap();
    wait_for("1006");
    stdin.write_all(b"\x04").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let history = std::fs::read_to_string(home.join("repl_history")).unwrap();
    assert!(history.contains("x * 7"), "{history}");
}

/// `run` on more nodes than get a log subscription each (16) listens to the fleet's log
/// filter instead, so every node's crash is still reported and `--follow` still ends.
#[test]
fn run_on_many_nodes_sees_every_crash() {
    let f = Fleet::new(BrokerKind::Embedded);
    let mut sim = common::plastic();
    sim.args(["sim", "--nodes", "20", "--name-prefix", "big"])
        .args(["--broker", &f.broker.url()])
        .arg("--root")
        .arg(f.dir.path().join("sim"));
    let sim = common::Proc::spawn(sim, "plastic sim");
    sim.wait_contains("20 nodes online");
    let crash = f.dir.path().join("boom.py");
    std::fs::write(&crash, "1/0\n").unwrap();
    let out = f.cli(&["run", "big-*", crash.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.matches("script `boom` crashed:").count(),
        20,
        "{out:?}"
    );
    let fine = f.dir.path().join("fine.py");
    std::fs::write(&fine, "print('ok')\n").unwrap();
    let out = f.cli(&["run", "big-*", fine.to_str().unwrap(), "--follow"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stderr.matches("script `fine` finished").count(),
        20,
        "{out:?}"
    );
}
