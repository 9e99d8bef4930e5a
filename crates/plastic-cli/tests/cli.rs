//! The command line as operators and scripts meet it: exit codes (README, "Exit codes"),
//! messages for each failure, JSON errors, quiet ends on a closed stdout, no colour when
//! piped, `exec -` and `exec -f`, `--timeout` fractions, `hub --broker` without `--external`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{free_port, plastic, run, BrokerKind, Fleet, Proc};
use serde_json::Value;
/// Exit codes: 0 ok, 1 a node failed or nothing to do, 2 bad command line, 3 broker.
fn exit_codes(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &["lab"]);
    assert_eq!(f.cli(&["eval", "pi-1", "2+3"]).code, 0);
    let out = f.cli(&["eval", "pi-1", "1/0"]);
    assert!(
        out.code == 1 && out.stderr.contains("ZeroDivisionError"),
        "{out:?}"
    );
    let out = f.cli(&["eval", "nope", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("unknown node"),
        "{out:?}"
    );
    // A glob or a group that matches no online node: the same code and the same kind of sentence.
    let out = f.cli(&["eval", "zz-*", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("no online node matches `zz-*`"),
        "{out:?}"
    );
    let out = f.cli(&["eval", "group:nope", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("no online node is targeted"),
        "{out:?}"
    );
    let out = f.cli(&["--json", "eval", "zz-*", "1"]);
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((out.code, &line["error"]["kind"]), (1, &"NoTarget".into()));
    // Bad command lines: 2, with a sentence; with --json a JSON line.
    let out = f.cli(&["eval", "pi-1"]);
    assert_eq!(out.code, 2, "{out:?}");
    for (value, says) in [
        ("-1", "positive number of seconds"),
        ("0", "positive number of seconds"),
        ("0.001", "at least 0.01"),
        ("soon", "not a number of seconds"),
    ] {
        let out = f.cli(&["--timeout", value, "eval", "pi-1", "1"]);
        assert!(
            out.code == 2 && out.stderr.contains(says),
            "{value}: {out:?}"
        );
    }
    let out = f.cli(&["--json", "--timeout", "-1", "eval", "pi-1", "1"]);
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!((out.code, &line["error"]["kind"]), (2, &"Usage".into()));
    // Fractions of a second are kept and shown.
    let out = f.cli(&[
        "--timeout",
        "0.05",
        "exec",
        "pi-1",
        "import time\ntime.sleep(1)",
    ]);
    assert!(
        out.code == 1 && out.stderr.contains("within 0.05 s"),
        "{out:?}"
    );
}

/// `exec NODE -` reads the code from stdin, `exec NODE -f FILE` from a file.
fn exec_from_stdin_and_file(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let mut child = plastic()
        .args(["exec", "pi-1", "-"])
        .env("PLASTIC_BROKER", f.broker.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"x = 6\nprint(x * 7)\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).as_ref()
        ),
        (Some(0), "42\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = f.dir.path().join("setup.py");
    std::fs::write(&file, "for i in range(2):\n    print('line', i)\n").unwrap();
    assert_eq!(
        f.ok(&["exec", "pi-1", "-f", file.to_str().unwrap()]),
        "line 0\nline 1\n"
    );
    let out = f.cli(&["exec", "pi-1", "-f", "/nonexistent.py"]);
    assert!(
        out.code == 2 && out.stderr.contains("cannot read"),
        "{out:?}"
    );
    let out = f.cli(&["exec", "pi-1", "print(1)", "-f", file.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{out:?}");
}

/// A closed stdout ends `plastic watch` and `plastic ls` quietly, not with a panic.
fn closed_stdout_ends_quietly(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    // `plastic watch | grep -m1 online`: the reader leaves after the first line.
    let mut child = plastic()
        .args(["watch", "--broker", &f.broker.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("pi-1"), "{first}");
    drop(stdout);
    // More presence news: watch must print and find its reader gone.
    f.node("pi-2", &[]);
    f.node("pi-3", &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "watch still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.code() == Some(0) && !err.contains("panicked"),
        "{status:?} {err}"
    );
    // `plastic ls` into a pipe nobody reads.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(plastic()
        .args(["ls", "--broker", &f.broker.url()])
        .stdout(writer));
    assert!(out.code == 0 && !out.stderr.contains("panicked"), "{out:?}");
}

/// An unreachable broker: exit 3, one sentence, no reconnect warnings (they need -v) and no
/// colour when piped; `--json` makes it a JSON line.
#[test]
fn an_unreachable_broker_exits_3_with_one_sentence() {
    let url = format!("mqtt://127.0.0.1:{}", free_port());
    let out = run(plastic().args(["--broker", &url, "--timeout", "2", "ls"]));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stderr.contains("plastic hub` running"), "{out:?}");
    assert!(
        !out.stderr.contains("WARN") && !out.stderr.contains('\x1b'),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let out = run(plastic().args([
        "--broker",
        &url,
        "--timeout",
        "2",
        "--json",
        "eval",
        "x",
        "1",
    ]));
    let line: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        (out.code, &line["error"]["kind"]),
        (3, &"BrokerUnreachable".into())
    );
    let out = run(plastic().args(["--broker", &url, "--timeout", "2", "-v", "ls"]));
    assert!(
        out.code == 3 && out.stderr.contains("WARN") && !out.stderr.contains('\x1b'),
        "{out:?}"
    );
}

/// A wrong password: exit 3, and the message is about the login, not about starting a hub.
#[test]
fn a_refused_login_exits_3_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let out = run(plastic()
        .args(["user", "add", "alice", "--role", "viewer", "--users"])
        .arg(&users));
    assert_eq!(out.code, 0, "{out:?}");
    let (_hub, port) = common::hub_with_users(&users, &[]);
    let url = format!("mqtt://alice@127.0.0.1:{port}");
    let out = run(plastic()
        .args(["--broker", &url, "ls"])
        .env("PLASTIC_PASSWORD", "wrong-password"));
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("refused") && out.stderr.contains("password"),
        "{out:?}"
    );
    assert!(!out.stderr.contains("plastic hub"), "{out:?}");
}

/// `--broker` with `hub` is refused unless `--external` says that is meant.
#[test]
fn hub_with_broker_needs_external() {
    let url = format!("mqtt://127.0.0.1:{}", free_port());
    let out = run(plastic().args(["--broker", &url, "hub", "--listen", "127.0.0.1:0"]));
    assert!(
        out.code == 2 && out.stderr.contains("--external"),
        "{out:?}"
    );
    // PLASTIC_BROKER is for clients: the hub still embeds its broker where --listen says.
    let port = free_port();
    let mut cmd = plastic();
    cmd.args(["hub", "--listen", &format!("127.0.0.1:{port}")])
        .env("PLASTIC_BROKER", &url);
    let hub = Proc::spawn(cmd, "plastic hub");
    let line = hub.wait_contains("MQTT broker listening on");
    assert!(line.ends_with(&format!(":{port}")), "{line}");
}

/// `plastic forget NODE` removes a stale node's presence, and refuses while it is online.
fn forget_removes_a_stale_presence(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("old-pi", &[]);
    let out = f.cli(&["forget", "old-pi"]);
    assert!(out.code == 1 && out.stderr.contains("is online"), "{out:?}");
    let watch = f.watch();
    f.node_proc("old-pi").terminate();
    watch.wait_line(
        |l| l.contains("\"node\":\"old-pi\"") && l.contains("\"state\":\"offline\""),
        "old-pi offline",
    );
    assert_eq!(
        f.ok(&["forget", "old-pi"]),
        "forgot old-pi (it was offline)\n"
    );
    assert!(!f.ok(&["ls"]).contains("old-pi"));
    let out = f.cli(&["forget", "old-pi"]);
    assert!(
        out.code == 1 && out.stderr.contains("unknown node"),
        "{out:?}"
    );
}

/// An operator added without `--allow` may do nothing: say so, and list what it could do.
#[test]
fn an_operator_without_allow_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let out = run(plastic()
        .args(["user", "add", "bob", "--role", "operator", "--users"])
        .arg(&users));
    assert!(
        out.code == 0
            && out.stderr.contains("warning: operator bob has no --allow")
            && out.stderr.contains("gpio.write"),
        "{out:?}"
    );
    let out = run(plastic()
        .args([
            "user", "add", "carol", "--role", "operator", "--allow", "eval", "--users",
        ])
        .arg(&users));
    assert!(out.code == 0 && !out.stderr.contains("warning"), "{out:?}");
}

/// A second node with a live node's name refuses to start (no session-takeover flapping); a
/// node restarting after a crash, whose old connection the broker still counts alive, starts.
fn a_name_in_use_is_refused(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let other_root = f.dir.path().join("other");
    let out = run(plastic()
        .args([
            "node",
            "--name",
            "pi-1",
            "--broker",
            &f.broker.url(),
            "--root",
        ])
        .arg(&other_root));
    assert!(
        out.code == 1 && out.stderr.contains("name pi-1 is in use by 127.0.0.1"),
        "{out:?}"
    );
    // The first node never left.
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    let lines = f.node_proc("pi-1").output_so_far();
    assert_eq!(lines.matches(": online").count(), 1, "{lines}");
    // A crash: the old connection stays "alive" at the broker until its keepalive runs out.
    f.node_proc("pi-1").kill();
    let started = Instant::now();
    let root = f.root_of("pi-1");
    let restarted = common::start_node("pi-1", &f.broker.url(), &root, &[]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    drop(restarted);
}

on_both_brokers!(
    exit_codes,
    exec_from_stdin_and_file,
    closed_stdout_ends_quietly,
    forget_removes_a_stale_presence,
    a_name_in_use_is_refused
);
