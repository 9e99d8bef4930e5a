//! Security end to end: users and roles on the hub, TLS, signed requests (through the embedded
//! hub and through Mosquitto). Every hostile attempt is checked for a clear refusal *and* for
//! having changed nothing: nodes keep a `hits` counter that every attempt tries to bump.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use common::{add_user, hub_with_users, plastic, run, which, BrokerKind, Fleet, Out, Proc};
use plastic_proto::NodeKey;
use serde_json::{json, Value};

const BUMP: &str = "hits += 1";
struct AuthHub {
    hub: Proc,
    port: u16,
    dir: tempfile::TempDir,
    nodes: Vec<Proc>,
    tls: bool,
}

impl AuthHub {
    fn url(&self, user: &str, password: &str) -> String {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        format!("{scheme}://{user}:{password}@127.0.0.1:{}", self.port)
    }

    fn start(users: &Path, dir: tempfile::TempDir, tls: Option<(&Path, &Path)>) -> AuthHub {
        let tls_args: Vec<&str> = match tls {
            Some((cert, key)) => vec![
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
            None => vec![],
        };
        let (hub, port) = hub_with_users(users, &tls_args);
        AuthHub {
            hub,
            port,
            dir,
            nodes: vec![],
            tls: tls.is_some(),
        }
    }

    fn node(&mut self, name: &str, password: &str, extra: &[&str]) {
        let url = self.url(name, password);
        let proc = common::start_node(name, &url, &self.dir.path().join(name), extra);
        self.nodes.push(proc);
    }

    fn cli(&self, url: &str, args: &[&str]) -> Out {
        run(plastic()
            .args(args)
            .env("PLASTIC_BROKER", url)
            .current_dir(self.dir.path()))
    }
}

/// mosquitto_sub logged in as `user`, subscribed (its SUBACK line seen).
fn sub_as(port: u16, (user, password): (&str, &str), client_id: &str, topic: &str) -> Proc {
    let mut cmd = Command::new(which("stdbuf"));
    cmd.arg("-oL")
        .arg(which("mosquitto_sub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-d"])
        .args(["-u", user, "-P", password, "-i", client_id, "-t", topic]);
    let proc = Proc::spawn(cmd, &format!("mosquitto_sub as {user}"));
    proc.wait_contains("SUBACK");
    proc
}

/// mosquitto_pub logged in as `user`, the payload on standard input.
fn pub_as(port: u16, (user, password): (&str, &str), client_id: &str, topic: &str, payload: &[u8]) {
    let status = Command::new(which("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args([
            "-u", user, "-P", password, "-i", client_id, "-t", topic, "-s",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(payload)?;
            c.wait()
        })
        .unwrap();
    assert!(status.success(), "mosquitto_pub as {user} failed");
}

fn assert_refused(out: &Out, needles: &[&str]) {
    assert_ne!(out.code, 0, "expected a refusal: {out:?}");
    let all = format!("{}{}", out.stdout, out.stderr);
    for needle in needles {
        assert!(
            all.contains(needle),
            "expected {needle:?} in the refusal: {out:?}"
        );
    }
}

#[test]
fn users_roles_and_capabilities_are_enforced_by_the_hub() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let alice = add_user(
        &users,
        "alice",
        "operator",
        &["--allow", "eval,gpio.read", "--nodes", "lab-*"],
    );
    let ops = add_user(&users, "ops", "operator", &["--allow", "eval,exec,file"]);
    let viewer = add_user(&users, "viewer1", "viewer", &[]);
    let lab = add_user(&users, "lab-1", "node", &[]);
    let prod = add_user(&users, "prod-1", "node", &[]);
    let spy = add_user(&users, "spy-1", "node", &[]);
    // Names that could not be one topic level are refused before anything is written.
    for bad in ["a/b", "a+b", "a#b", "hub"] {
        let out = run(plastic()
            .args(["user", "add", bad, "--role", "viewer", "--users"])
            .arg(&users));
        assert_eq!(out.code, 2, "user {bad}: {out:?}");
    }
    let listed = run(plastic().args(["user", "list", "--users"]).arg(&users));
    assert!(
        listed.stdout.contains("alice") && listed.stdout.contains("eval,gpio.read"),
        "{listed:?}"
    );
    assert!(!listed.stdout.contains("argon2"), "{listed:?}");

    let mut h = AuthHub::start(&users, dir, None);
    h.node("lab-1", &lab, &[]);
    h.node("prod-1", &prod, &[]);
    let ops_url = h.url("ops", &ops);
    for node in ["lab-1", "prod-1"] {
        let out = h.cli(&ops_url, &["exec", node, "hits = 0"]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    let alice_url = h.url("alice", &alice);
    let viewer_url = h.url("viewer1", &viewer);

    // Allowed: an operator's eval on a node it may address; a viewer's listing.
    let out = h.cli(&alice_url, &["eval", "lab-1", "2+3"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "5"), "{out:?}");
    let out = h.cli(&viewer_url, &["ls"]);
    assert!(
        out.stdout.contains("lab-1") && out.stdout.contains("prod-1"),
        "{out:?}"
    );

    // No credentials, a wrong password, an unknown user.
    let port = h.port;
    for url in [
        format!("mqtt://127.0.0.1:{port}"),
        h.url("alice", "wrong-password"),
        h.url("mallory", "whatever1"),
    ] {
        let out = h.cli(&url, &["exec", "lab-1", BUMP]);
        assert_refused(
            &out,
            &["refused the connection", "bad user name or password"],
        );
    }
    h.hub.wait_contains("refused a connection");
    // A viewer publishing exec; an operator without exec; an operator limited to lab-*.
    let out = h.cli(&viewer_url, &["exec", "lab-1", BUMP]);
    assert_refused(&out, &["Forbidden", "viewer"]);
    let out = h.cli(&alice_url, &["exec", "lab-1", BUMP]);
    assert_refused(
        &out,
        &["Forbidden", "alice may not exec", "eval, gpio.read"],
    );
    let out = h.cli(&alice_url, &["eval", "prod-1", "1"]);
    assert_refused(&out, &["Forbidden", "may only address lab-*", "prod-1"]);
    // Downloads and directories need `file`, which alice lacks (and a viewer too).
    for args in [
        &["fs", "lab-1", "cat", "x.txt"][..],
        &["fs", "lab-1", "mkdir", "d"],
        &["fs", "lab-1", "rmdir", "d"],
    ] {
        let out = h.cli(&alice_url, args);
        assert_refused(&out, &["Forbidden", "alice may not"]);
        let out = h.cli(&viewer_url, args);
        assert_refused(&out, &["Forbidden"]);
    }
    let out = h.cli(&alice_url, &["exec", "all", BUMP]);
    assert_refused(&out, &["Forbidden"]);
    // The hub logs what it refused.
    h.hub.wait_contains("refused a request from alice");

    // A node subscribing to another node's inbox gets a failure code in its SUBACK.
    let spy_proc = sub_as(port, ("spy-1", &spy), "spy-1", "plastic/lab-1/in");
    spy_proc.wait_contains(": 128");
    // A raw publish with a spoofed sender, malformed JSON, deep nesting: dropped by the hub.
    for payload in [
        format!(r#"{{"type":"exec","to_exec":"{BUMP}","sender":"ops.x","message_id":"spoof"}}"#),
        "{not json".to_owned(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
    ] {
        pub_as(
            port,
            ("alice", &alice),
            "alice.raw",
            "plastic/lab-1/in",
            payload.as_bytes(),
        );
    }
    h.hub.wait_contains("sender and reply_to must be alice");
    h.hub.wait_contains("not a plastic message");
    // A last will is a publish the broker makes later: one aimed at a node's inbox is refused
    // at CONNECT.
    let will = format!(r#"{{"type":"exec","to_exec":"{BUMP}","sender":"alice.w"}}"#);
    let out = Command::new(which("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args([
            "-u",
            "alice",
            "-P",
            &alice,
            "-i",
            "alice.w",
            "-t",
            "plastic/alice.w/in",
            "-m",
            "{}",
        ])
        .args(["--will-topic", "plastic/lab-1/in", "--will-payload", &will])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a will on a node's inbox was accepted"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authori"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.hub.wait_contains("may not leave a last will");
    // Hostile payloads from a user who may send them reach the node and are refused there.
    let replies = sub_as(port, ("ops", &ops), "ops.t", "plastic/ops.t/in");
    let big = format!(
        r#"{{"type":"exec","to_exec":"{}","message_id":"big","sender":"ops.t"}}"#,
        "#".repeat(300_000)
    );
    pub_as(
        port,
        ("ops", &ops),
        "ops.p",
        "plastic/lab-1/in",
        big.as_bytes(),
    );
    replies.wait_line(
        |l| l.contains("big") && l.contains("PayloadTooLarge"),
        "PayloadTooLarge",
    );
    for path in ["../../etc/passwd", "/etc/passwd"] {
        let msg = json!({"type": "file", "filename": path, "content": "x"}).to_string();
        let out = h.cli(&ops_url, &["send", "lab-1", &msg]);
        assert_refused(&out, &["BadPath"]);
    }
    let out = h.cli(&ops_url, &["eval", "lab/1", "1"]);
    assert_eq!(out.code, 2, "{out:?}");
    // Nothing ran and nothing changed; the spy saw no request.
    for node in ["lab-1", "prod-1"] {
        let out = h.cli(&ops_url, &["eval", node, "hits"]);
        assert_eq!((out.code, out.stdout.trim()), (0, "0"), "{node}: {out:?}");
    }
    assert!(
        !spy_proc.output_so_far().contains("PUBLISH"),
        "the spy received something: {}",
        spy_proc.output_so_far()
    );
    assert!(!h.dir.path().join("etc").exists());
}

#[test]
fn the_hub_will_not_listen_on_the_network_without_users_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    // Binding fails or succeeds before any traffic; these refusals come before the bind.
    let out = run(plastic()
        .args(["hub", "--listen", "0.0.0.0:0"])
        .env_remove("PLASTIC_BROKER"));
    assert_refused(&out, &["without authentication", "--insecure"]);
    add_user(&users, "ops", "operator", &["--allow", "eval"]);
    let out = run(plastic()
        .args(["hub", "--listen", "0.0.0.0:0", "--users"])
        .arg(&users)
        .env_remove("PLASTIC_BROKER"));
    assert_refused(&out, &["without TLS", "plastic certs init"]);
    let out = run(plastic()
        .args(["hub", "--users"])
        .arg(dir.path().join("missing.toml"))
        .env_remove("PLASTIC_BROKER"));
    assert_refused(&out, &["missing.toml"]);
    let out = run(plastic()
        .args(["hub", "--board-listen", "127.0.0.1:0"])
        .env("PLASTIC_HOME", dir.path().join("empty-home"))
        .env_remove("PLASTIC_BROKER"));
    assert_refused(&out, &["node users only", "plastic board add"]);
}

/// docs/security.md: `--insecure` lets the hub listen beyond loopback without users, and it
/// says so on every start. The hub binds 0.0.0.0 on a port of the kernel's choosing, prints
/// its lines and is stopped; no traffic is sent.
#[test]
fn an_insecure_hub_says_so_on_every_start() {
    let dir = tempfile::tempdir().unwrap();
    for start in 1..=2 {
        let mut cmd = plastic();
        cmd.args(["hub", "--listen", "0.0.0.0:0", "--insecure"])
            .env("PLASTIC_HOME", dir.path().join("empty-home"))
            .env_remove("PLASTIC_BROKER");
        let mut hub = Proc::spawn(cmd, "plastic hub --insecure");
        let warning = hub.wait_contains("WARNING");
        assert!(
            warning.contains("listening on 0.0.0.0:0 without authentication")
                && warning.contains("(--insecure)"),
            "start {start}: {warning}"
        );
        // Printed on stdout, the warning on stderr: either may be read first.
        if !hub.output_so_far().contains("MQTT broker listening on") {
            hub.wait_contains("MQTT broker listening on");
        }
        hub.terminate();
    }
}

/// docs/security.md: a chosen password (`--password-stdin`) has 8 characters at least,
/// counted as characters, not bytes.
#[test]
fn a_chosen_password_needs_8_characters() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let add = |name: &str, password: &str| {
        let mut child = plastic()
            .args(["user", "add", name, "--role", "viewer", "--password-stdin"])
            .arg("--users")
            .arg(&users)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    // 7 characters (14 bytes): refused; 8 characters: taken.
    let out = add("v1", "ééééééé");
    assert_refused(&out, &["at least 8 characters"]);
    let out = add("v1", "1234567");
    assert_refused(&out, &["at least 8 characters"]);
    let listed = |name: &str| {
        let out = run(plastic().args(["user", "list", "--users"]).arg(&users));
        out.stdout.contains(name)
    };
    assert!(!listed("v1"), "a refused password added the user");
    let out = add("v1", "éééééééé");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(listed("v1"));
}

#[test]
fn tls_hub_with_a_local_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = run(plastic().args(["certs", "init", "--dir"]).arg(&certs));
    assert_eq!(out.code, 0, "{out:?}");
    let again = run(plastic().args(["certs", "init", "--dir"]).arg(&certs));
    assert_refused(&again, &["--force"]);
    let users = dir.path().join("users.toml");
    let ops = add_user(&users, "ops", "operator", &["--allow", "eval"]);
    let node = add_user(&users, "tls-1", "node", &[]);
    let (cert, key) = (certs.join("hub.pem"), certs.join("hub.key"));
    let mut h = AuthHub::start(&users, dir, Some((&cert, &key)));
    let ca = certs.join("ca.pem");
    let ca_arg = ca.to_str().unwrap();
    h.node("tls-1", &node, &["--ca", ca_arg]);
    let url = h.url("ops", &ops);
    let out = h.cli(&url, &["--ca", ca_arg, "eval", "tls-1", "6*7"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "42"), "{out:?}");
    // Without the CA the hub's certificate is not trusted; plain MQTT to a TLS port fails.
    let out = h.cli(&url, &["--timeout", "3", "eval", "tls-1", "1"]);
    assert_refused(&out, &["certificate is not trusted", "--ca"]);
    assert_eq!(out.code, 3, "{out:?}");
    let plain = format!("mqtt://ops:{ops}@127.0.0.1:{}", h.port);
    let out = h.cli(&plain, &["--timeout", "3", "eval", "tls-1", "1"]);
    assert_refused(&out, &["cannot reach the broker"]);
    assert_eq!(out.code, 3, "{out:?}");
}

/// A request as a third party would sign it, addressed to `receiver`, replies to `tester`.
fn signed(key: &NodeKey, id: &str, receiver: &str, code: &str, ts: f64) -> Vec<u8> {
    let body = json!({
        "type": "exec", "to_exec": code, "need_result": true, "message_id": id,
        "sender": "tester", "receiver": receiver, "time_stamp": ts,
    });
    key.sign(body.to_string().as_bytes())
}

fn now() -> f64 {
    plastic_proto::unix_seconds(SystemTime::now())
}

fn signed_requests(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    let keys = f.dir.path().join("keys");
    let new_key = |node: &str| {
        let out = run(plastic()
            .args(["node-key", "new", node])
            .env("PLASTIC_KEYS", &keys));
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout.trim().to_owned()
    };
    let hex = new_key("esp-1");
    let again = run(plastic()
        .args(["node-key", "new", "esp-1"])
        .env("PLASTIC_KEYS", &keys));
    assert_refused(&again, &["--force"]);
    let key = NodeKey::from_hex(&hex).unwrap();
    let key_file: PathBuf = keys.join("esp-1.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "node-key new wrote {key_file:?} {mode:o}"
        );
    }
    let before_start = now() - 0.5;
    let node = common::start_node(
        "esp-1",
        &f.broker.url(),
        &f.root_of("esp-1"),
        &["--key-file", key_file.to_str().unwrap()],
    );
    f.node("esp-2", &[]);
    let with_keys = |args: &[&str]| {
        run(plastic()
            .args(args)
            .env("PLASTIC_BROKER", f.broker.url())
            .env("PLASTIC_KEYS", &keys))
    };
    // The CLI signs with the key it has; broadcasts to signed nodes become one request each.
    let out = with_keys(&["exec", "esp-1", "hits = 0"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = with_keys(&["eval", "esp-*", "'ok'"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("esp-1: \"ok\"") && out.stdout.contains("esp-2: \"ok\""),
        "{out:?}"
    );
    // Without the key: refused, and said why.
    let out = f.cli(&["exec", "esp-1", BUMP]);
    assert_refused(&out, &["Unsigned"]);

    let replies = f.mosquitto_sub("plastic/tester/in");
    let reply_to = |id: &str| -> Value {
        let line = replies.wait_line(|l| l.contains(id), &format!("a reply to {id}"));
        serde_json::from_str(&line).unwrap()
    };
    // A valid signed request runs once; its replay gets the first reply and does not run again.
    let good = signed(&key, "good-1", "esp-1", BUMP, now());
    f.mosquitto_pub("plastic/esp-1/in", &good);
    let first = reply_to("good-1");
    assert_eq!(first["ok"], true, "{first}");
    f.mosquitto_pub("plastic/esp-1/in", &good);
    let second = reply_to("good-1");
    assert_eq!(first, second, "a replay is answered with the first reply");
    // Tampered, signed with another key, for another node, stale, from before the node started.
    let tampered = String::from_utf8(signed(&key, "tamper", "esp-1", BUMP, now()))
        .unwrap()
        .replace("hits += 1", "hits += 9");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tamper", tampered.into_bytes(), "BadSignature"),
        (
            "other-key",
            signed(&NodeKey::generate(), "other-key", "esp-1", BUMP, now()),
            "BadSignature",
        ),
        (
            "misdirected",
            signed(&key, "misdirected", "esp-2", BUMP, now()),
            "BadSignature",
        ),
        (
            "stale",
            signed(&key, "stale", "esp-1", BUMP, now() - 1000.0),
            "Stale",
        ),
        (
            "future",
            signed(&key, "future", "esp-1", BUMP, now() + 1000.0),
            "Stale",
        ),
        (
            "pre-start",
            signed(&key, "pre-start", "esp-1", BUMP, before_start),
            "Stale",
        ),
    ];
    for (id, payload, kind) in cases {
        f.mosquitto_pub("plastic/esp-1/in", &payload);
        let reply = reply_to(id);
        assert_eq!(reply["ok"], false, "{id}: {reply}");
        assert_eq!(reply["error"]["kind"], kind, "{id}: {reply}");
        assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    }
    node.wait_line(
        |l| l.contains("refused a request") && l.contains("Stale"),
        "logging the refusal",
    );
    let out = with_keys(&["eval", "esp-1", "hits"]);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "1"),
        "ran exactly once: {out:?}"
    );
}

on_both_brokers!(signed_requests);

/// The MicroPython agent logs in to a hub with users as its node user, and works as usual.
#[test]
fn an_agent_logs_in_as_its_node_user() {
    let micropython = common::repo_file(".venv/bin/micropython");
    assert!(micropython.exists(), "run scripts/setup-test-deps");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let ops = add_user(&users, "ops", "operator", &["--allow", "eval"]);
    let board = add_user(&users, "board-1", "node", &[]);
    let h = AuthHub::start(&users, dir, None);
    let bundle_dir = h.dir.path().join("board");
    let out = run(plastic()
        .args(["agent", "bundle", "--out"])
        .arg(&bundle_dir)
        .args(["--broker", &h.url("board-1", &board), "--name", "board-1"]));
    assert_eq!(out.code, 0, "{out:?}");
    let mut agent = Command::new(micropython);
    agent
        // The bundle's .py sources with signing on the 64-bit interpreter: 120k was its edge
        // (a MemoryError dropped the connection now and then under load); board-sized heaps
        // are the 32-bit port's tests (agent/tests/test_memory.py).
        .args(["-X", "heapsize=256k", "main.py"])
        .current_dir(&bundle_dir);
    let _agent = Proc::spawn(agent, "agent board-1");
    h.hub.wait_contains("node board-1 online");
    let out = h.cli(&h.url("ops", &ops), &["eval", "board-1", "6*7"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "42"), "{out:?}");
    // With the wrong password the board stays out, and the hub says why.
    let out = h.cli(&h.url("board-1", "not-its-password"), &["ls"]);
    assert_refused(&out, &["bad user name or password"]);
}

/// A board joins as docs/agent.md says: `plastic board add` makes its user, key and bundle;
/// the hub's board listener (plain TCP, as an ESP8266 needs) admits it but no operator, viewer
/// or admin; operators work through the main listener; with the key nothing unsigned runs.
#[test]
fn a_board_joins_through_the_board_listener() {
    let micropython = common::repo_file(".venv/bin/micropython");
    assert!(micropython.exists(), "run scripts/setup-test-deps");
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let keys = dir.path().join("keys");
    let ops = add_user(&users, "ops", "operator", &["--allow", "eval,exec"]);
    let root = add_user(&users, "root", "admin", &[]);
    let board_port = common::free_port();
    let bundle_dir = dir.path().join("esp-1");
    let out = run(plastic()
        .args([
            "board",
            "add",
            "esp-1",
            "--hub",
            &format!("127.0.0.1:{board_port}"),
        ])
        .args(["--key", "--group", "lab", "--users"])
        .arg(&users)
        .arg("--out")
        .arg(&bundle_dir)
        .env("PLASTIC_KEYS", &keys));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("mpremote cp -r"), "{out:?}");
    let config = std::fs::read_to_string(bundle_dir.join("config.py")).unwrap();
    assert!(
        config.contains(&format!("BROKER_PORT = {board_port}")),
        "{config}"
    );
    assert!(config.contains("BROKER_USER = \"esp-1\""), "{config}");
    assert!(
        !std::fs::read_to_string(&users).unwrap().contains("BROKER"),
        "no secrets mixed up"
    );
    // docs/security.md: `plastic board add` gives the board's user its group and no reach.
    let file: toml::Table = std::fs::read_to_string(&users).unwrap().parse().unwrap();
    let esp = &file["users"]["esp-1"];
    assert_eq!(esp["role"].as_str(), Some("node"), "{esp}");
    assert_eq!(esp["groups"].as_array().unwrap().len(), 1, "{esp}");
    for reach in ["allow", "nodes"] {
        assert!(
            esp.get(reach)
                .and_then(|v| v.as_array())
                .is_none_or(|a| a.is_empty()),
            "board add gave {reach}: {esp}"
        );
    }
    // The same name again is refused without --force: its password would silently change.
    let again = run(plastic()
        .args(["board", "add", "esp-1", "--hub", "127.0.0.1", "--users"])
        .arg(&users)
        .arg("--out")
        .arg(dir.path().join("again")));
    assert_refused(&again, &["already a user", "--force"]);

    let board_listen = format!("127.0.0.1:{board_port}");
    let (hub, port) = hub_with_users(&users, &["--board-listen", &board_listen]);
    // Printed before "authentication on", which hub_with_users waited for.
    let started = hub.output_so_far();
    assert!(
        started.contains(&format!("board listener on {board_listen}")),
        "{started}"
    );
    let mut agent = Command::new(micropython);
    agent
        // The bundle's .py sources with signing on the 64-bit interpreter: 120k was its edge
        // (a MemoryError dropped the connection now and then under load); board-sized heaps
        // are the 32-bit port's tests (agent/tests/test_memory.py).
        .args(["-X", "heapsize=256k", "main.py"])
        .current_dir(&bundle_dir);
    let _agent = Proc::spawn(agent, "agent esp-1");
    hub.wait_contains("node esp-1 online");

    let as_user = |user: &str, password: &str, port: u16, args: &[&str]| {
        run(plastic()
            .args(args)
            .env(
                "PLASTIC_BROKER",
                format!("mqtt://{user}:{password}@127.0.0.1:{port}"),
            )
            .env("PLASTIC_KEYS", &keys))
    };
    let out = as_user("ops", &ops, port, &["eval", "esp-1", "6*7"]);
    assert_eq!((out.code, out.stdout.trim()), (0, "42"), "{out:?}");
    // Operators and admins are turned away at the board listener, with the hub saying why.
    for (user, password) in [("ops", ops.as_str()), ("root", root.as_str())] {
        let out = as_user(user, password, board_port, &["ls"]);
        assert_refused(&out, &["not authorised"]);
    }
    hub.wait_contains("only node users may connect on the board listener");
    // Whoever holds no node key (a sniffer on the board's LAN, an operator without it) gets
    // nothing run on the board.
    let out = run(plastic()
        .args(["exec", "esp-1", "hits = 1"])
        .env(
            "PLASTIC_BROKER",
            format!("mqtt://ops:{ops}@127.0.0.1:{port}"),
        )
        .env("PLASTIC_KEYS", dir.path().join("no-keys")));
    assert_refused(&out, &["Unsigned"]);
}
