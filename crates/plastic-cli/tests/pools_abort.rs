//! `abort` (docs/protocol.md, "Built-in commands") and pools ("Pools"), end to end: real
//! `plastic` processes on the embedded hub and on Mosquitto, waits on events only.

mod common;

use common::{BrokerKind, Fleet};

/// What `abort` promises: a request running is interrupted, one waiting behind it is answered
/// `Aborted` at once and never runs, one not sent yet is refused when it arrives, and a
/// finished one is left alone. Each request gets exactly one reply.
fn abort_never_lets_an_aborted_request_run(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node("pi-1", &[]);
    let watch = f.watch();
    // Replies to requests this test publishes by hand come to the inbox of `tester`.
    let replies = f.mosquitto_sub("plastic/tester/in");

    // Not sent yet: remembered, and refused on arrival.
    let out = f.ok(&["abort", "pi-1", "later-1"]);
    assert!(out.contains("not received yet"), "{out}");
    let later = f.cli(&[
        "send",
        "pi-1",
        r#"{"type": "exec", "to_exec": "ran_later = True", "message_id": "later-1", "need_result": true}"#,
    ]);
    assert!(
        later.code == 1 && later.stderr.contains("Aborted") && later.stderr.contains("not run"),
        "{later:?}"
    );

    // Running, with one waiting behind it.
    let mut running = common::plastic();
    running
        .args([
            "--timeout",
            "120",
            "send",
            "pi-1",
            r#"{"type": "exec", "to_exec": "import time, plastic\nplastic.publish('busy', 1)\ntime.sleep(60)", "message_id": "run-1", "need_result": true}"#,
        ])
        .env("PLASTIC_BROKER", f.broker.url());
    let mut running = common::Proc::spawn(running, "running exec");
    watch.wait_contains("\"topic\":\"busy\"");
    f.mosquitto_pub(
        "plastic/pi-1/in",
        br#"{"type": "exec", "to_exec": "ran_waiting = True", "message_id": "wait-1", "need_result": true, "sender": "tester"}"#,
    );
    let out = f.ok(&["--json", "abort", "pi-1", "wait-1"]);
    // The abort may overtake the request on its way in (two publishers): either way it is
    // answered Aborted and never runs.
    assert!(
        out.contains(r#""was":"waiting""#) || out.contains(r#""was":"unseen""#),
        "{out}"
    );
    let reply = replies.wait_contains("\"correlation_id\":\"wait-1\"");
    assert!(reply.contains("\"kind\":\"Aborted\""), "{reply}");
    assert!(
        running.output_so_far().is_empty(),
        "the running request must still be running when the waiting one is answered"
    );
    let out = f.ok(&["abort", "pi-1", "run-1"]);
    assert!(out.contains("interrupted"), "{out}");
    assert_eq!(
        replies
            .output_so_far()
            .matches("\"correlation_id\":\"wait-1\"")
            .count(),
        1,
        "one reply to the aborted request"
    );
    running.wait_contains("KeyboardInterrupt");
    assert_eq!(running.child.wait().unwrap().code(), Some(1));

    // Finished: nothing changes.
    let out = f.ok(&["abort", "pi-1", "run-1"]);
    assert!(out.contains("already finished"), "{out}");
    let out = f.ok(&[
        "eval",
        "pi-1",
        "[n in globals() for n in ('ran_later', 'ran_waiting')]",
    ]);
    assert_eq!(out.trim(), "[false,false]");
    // A bad id is refused before it is sent.
    let out = f.cli(&["abort", "pi-1", ""]);
    assert_ne!(out.code, 0, "{out:?}");
}

/// Each task sent to a pool runs on exactly one online member; members share the work; a
/// pool with nobody online is refused up front; a member lost mid-task is a definite outcome.
fn pools_give_each_task_to_exactly_one_member(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node_with("w-1", &["--pool", "workers"]);
    f.node_with("w-2", &["--pool", "workers"]);
    f.node("other", &[]);
    for i in 0..12 {
        f.ok(&[
            "exec",
            "pool:workers",
            &format!("tasks = globals().get('tasks', []) + [{i}]"),
        ]);
    }
    for _ in 0..4 {
        let out = f.ok(&["eval", "pool:workers", "__import__('plastic').name"]);
        let (member, value) = out.trim().split_once(": ").expect("labelled by member");
        assert_eq!(
            format!("\"{member}\""),
            value,
            "the member that answered ran it"
        );
    }
    let mut seen: Vec<u64> = Vec::new();
    for member in ["w-1", "w-2"] {
        let out = f.ok(&["eval", member, "globals().get('tasks', [])"]);
        let tasks: Vec<u64> = serde_json::from_str(out.trim()).unwrap();
        assert!(!tasks.is_empty(), "{member} got no task");
        seen.extend(tasks);
    }
    seen.sort();
    assert_eq!(seen, (0..12).collect::<Vec<_>>(), "each task ran once");
    let out = f.ok(&["eval", "other", "'tasks' in globals()"]);
    assert_eq!(out.trim(), "false", "a node outside the pool got a task");
    let ls = f.ok(&["--json", "ls"]);
    assert!(ls.contains(r#""pools":["workers"]"#), "{ls}");

    let out = f.cli(&["eval", "pool:nobody", "1"]);
    assert!(
        out.code == 1 && out.stderr.contains("no member of pool `nobody` is online"),
        "{out:?}"
    );

    // The member that took a task dies: told at once that it may or may not have run. (It
    // says it took the task once the task has run 50 ms; the event comes after that.)
    let watch = f.watch();
    let mut slow = common::plastic();
    slow.args([
        "--timeout",
        "120",
        "exec",
        "pool:workers",
        "import time, plastic\ntime.sleep(0.2)\nplastic.publish('took', plastic.name)\ntime.sleep(60)",
    ])
    .env("PLASTIC_BROKER", f.broker.url());
    let mut slow = common::Proc::spawn(slow, "pool task");
    let took = watch.wait_contains("\"topic\":\"took\"");
    let member = if took.contains("\"w-1\"") {
        "w-1"
    } else {
        "w-2"
    };
    f.node_proc(member).kill();
    slow.wait_contains(&format!("node {member} went lost before answering"));
    assert_eq!(slow.child.wait().unwrap().code(), Some(1));
}

/// A member stopped cleanly leaves its pool: the tasks after it all go to the members left
/// (Mosquitto would otherwise keep handing the stopped member its turn, to wait in its
/// session).
fn a_member_that_stops_cleanly_leaves_its_pool(kind: BrokerKind) {
    let mut f = Fleet::new(kind);
    f.node_with("w-1", &["--pool", "workers"]);
    f.node_with("w-2", &["--pool", "workers"]);
    let watch = f.watch();
    f.node_proc("w-2").terminate();
    watch.wait_line(
        |l| l.contains("\"node\":\"w-2\"") && l.contains("offline"),
        "w-2 offline",
    );
    for _ in 0..4 {
        let out = f.ok(&["--timeout", "10", "eval", "pool:workers", "1"]);
        assert_eq!(out.trim(), "w-1: 1");
    }
}

on_both_brokers!(
    abort_never_lets_an_aborted_request_run,
    pools_give_each_task_to_exactly_one_member,
    a_member_that_stops_cleanly_leaves_its_pool,
);

/// On a hub with users, a node takes tasks only from the pools its user lists, and an
/// operator reaches a pool only with `pool:NAME` in its `--nodes`.
#[test]
fn pool_access_follows_the_users_file() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let w1 = common::add_user(&users, "w-1", "node", &["--pools", "workers"]);
    let w2 = common::add_user(&users, "w-2", "node", &[]);
    let admin = common::add_user(&users, "root", "admin", &[]);
    let alice = common::add_user(
        &users,
        "alice",
        "operator",
        &["--allow", "eval", "--nodes", "w-*"],
    );
    let bob = common::add_user(
        &users,
        "bob",
        "operator",
        &["--allow", "eval", "--nodes", "pool:workers"],
    );
    let (hub, port) = common::hub_with_users(&users, &[]);
    let url = |user: &str, password: &str| format!("mqtt://{user}:{password}@127.0.0.1:{port}");
    let root = |n: &str| dir.path().join("nodes").join(n);
    let _w1 = common::start_node(
        "w-1",
        &url("w-1", &w1),
        &root("w-1"),
        &["--pool", "workers"],
    );
    let mut w2_node = common::plastic();
    w2_node
        .args(["node", "--name", "w-2", "--pool", "workers", "--root"])
        .arg(root("w-2"))
        .env("PLASTIC_BROKER", url("w-2", &w2));
    let w2_node = common::Proc::spawn(w2_node, "w-2 outside its pools");
    let cli = |user: &str, password: &str, args: &[&str]| {
        common::run(
            common::plastic()
                .args(args)
                .env("PLASTIC_BROKER", url(user, password)),
        )
    };
    // w-2 may not join: the hub refuses its subscription and says so, and so does w-2.
    hub.wait_contains("w-2 (node) may not subscribe to `$share/plastic/plastic/pool/workers/in`");
    w2_node.wait_contains("the broker refused 1 of");
    for _ in 0..4 {
        let out = cli(
            "bob",
            &bob,
            &["eval", "pool:workers", "__import__('plastic').name"],
        );
        assert_eq!(out.stdout.trim(), "w-1: \"w-1\"", "{out:?}");
    }
    // Long enough that the member says it took the task: the hub lets the notice through.
    let out = cli(
        "bob",
        &bob,
        &["eval", "pool:workers", "__import__('time').sleep(0.2) or 7"],
    );
    assert_eq!(out.stdout.trim(), "w-1: 7", "{out:?}");
    assert!(
        !hub.output_so_far().contains("from w-1 to"),
        "{}",
        hub.output_so_far()
    );
    // bob reaches the pool's members by name for an abort: his Ctrl-C or `plastic abort`
    // stops a task of his on whichever member has it.
    let mut job = common::plastic();
    job.args([
        "--timeout",
        "60",
        "send",
        "pool:workers",
        r#"{"type": "eval", "to_evaluate": "__import__('time').sleep(30)", "message_id": "job-1", "need_result": true}"#,
    ])
    .env("PLASTIC_BROKER", url("bob", &bob));
    let mut job = common::Proc::spawn(job, "bob's pool job");
    // (w-2 announces the pool without being allowed it: it refuses bob, and says so.)
    let out = cli("bob", &bob, &["abort", "pool:workers", "job-1"]);
    assert!(
        out.stdout.contains("w-1: it was running: interrupted")
            || out.stdout.contains("w-1: not received yet"),
        "{out:?}"
    );
    let line = job.wait_line(
        |l| l.contains("KeyboardInterrupt") || l.contains("Aborted"),
        "the job ends interrupted or aborted",
    );
    assert!(!line.contains("Forbidden"), "{line}");
    assert_eq!(job.child.wait().unwrap().code(), Some(1));
    let out = cli("alice", &alice, &["eval", "pool:workers", "1"]);
    assert!(
        out.code == 1
            && out.stderr.contains("Forbidden")
            && out.stderr.contains("not pool:workers"),
        "{out:?}"
    );
    let out = cli("root", &admin, &["eval", "pool:workers", "2"]);
    assert_eq!(out.stdout.trim(), "w-1: 2", "{out:?}");
}
