//! Runaway code on a Rust node (the Hardening issue): a busy `exec` is interrupted by
//! `plastic interrupt` and by Ctrl-C in the waiting CLI, deep nesting is a reply rather than an
//! abort, and `reset` restarts the node program. Real processes on 127.0.0.1; the node's CPU
//! use is read from /proc, as a user would with `top`.

mod common;

use std::time::{Duration, Instant};

use common::{plastic, BrokerKind, Fleet, Proc};
use serde_json::Value;

/// An exec that says (as an event) when its busy loop starts, then spins forever.
const SPIN: &str = "import plastic\nplastic.publish('spin', 1)\nwhile True: pass";

/// CPU seconds (user + system) the process has used, from /proc/PID/stat.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// The share of one core the process used over `window`.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(window); // the measurement itself: an interval, not a synchronisation
    (cpu_seconds(pid) - before) / window.as_secs_f64()
}

fn spawn_cli(f: &Fleet, args: &[&str]) -> Proc {
    let mut cmd = plastic();
    cmd.args(args)
        .env("PLASTIC_BROKER", f.broker.url())
        .env_remove("PLASTIC_PREFIX")
        .current_dir(f.dir.path());
    Proc::spawn(cmd, &format!("plastic {}", args[0]))
}

/// Starts the spinning exec and returns once the node is in its loop.
fn start_spinning(f: &Fleet) -> Proc {
    let watch = f.watch();
    let exec = spawn_cli(f, &["exec", "pi-1", SPIN]);
    watch.wait_contains("spin");
    exec
}

fn wait_exit(proc: &mut Proc) -> i32 {
    let deadline = Instant::now() + common::WAIT;
    loop {
        if let Some(status) = proc.child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "the CLI did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn plastic_interrupt_ends_a_busy_exec_and_the_node_idles_again() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let pid = f.node("pi-1", &[]).child.id();
    let mut exec = start_spinning(&f);
    assert!(cpu_share(pid, Duration::from_millis(500)) > 0.5, "spinning");

    let asked = Instant::now();
    let out = f.ok(&["interrupt", "pi-1"]);
    let answered = asked.elapsed();
    assert!(out.starts_with("interrupted: "), "{out}");
    assert_eq!(wait_exit(&mut exec), 1);
    assert!(
        exec.output_so_far().contains("KeyboardInterrupt"),
        "{}",
        exec.output_so_far()
    );
    eprintln!("plastic interrupt answered in {answered:?} (CLI start included)");
    assert!(answered < Duration::from_secs(3), "{answered:?}");

    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    let share = cpu_share(pid, Duration::from_secs(1));
    assert!(share < 0.1, "the node still uses {share:.2} of a core");
    assert_eq!(f.ok(&["interrupt", "pi-1"]), "nothing to interrupt\n");
}

#[test]
fn ctrl_c_in_a_waiting_exec_interrupts_it_on_the_node() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let pid = f.node("pi-1", &[]).child.id();
    let mut exec = start_spinning(&f);
    exec.signal(libc::SIGINT);
    assert_eq!(wait_exit(&mut exec), 130, "{}", exec.output_so_far());

    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    let share = cpu_share(pid, Duration::from_secs(1));
    assert!(share < 0.1, "the node still uses {share:.2} of a core");
}

#[test]
fn deep_nesting_is_a_recursion_error_and_the_node_keeps_answering() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    f.node("pi-1", &[]);
    let deep = "[".repeat(50_000) + &"]".repeat(50_000);
    for code in ["eval('[' * 50000 + ']' * 50000)", deep.as_str()] {
        let out = f.cli(&["eval", "pi-1", code]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("RecursionError"), "{out:?}");
    }
    let out = f.cli(&[
        "exec",
        "pi-1",
        "import json\njson.loads('[' * 100000 + ']' * 100000)",
    ]);
    assert!(out.stderr.contains("RecursionError"), "{out:?}");
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
}

/// The node's retained presence, as the broker hands it to a new subscriber.
fn presence_line(sub: &Proc, state: &str) -> Value {
    let line = sub.wait_line(
        |l| l.starts_with('{') && l.contains(&format!("\"state\":\"{state}\"")),
        state,
    );
    serde_json::from_str(&line).unwrap()
}

#[test]
fn reset_restarts_the_node_program_and_stuck_threads_are_gone() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    let pid = f.node("pi-1", &[]).child.id();
    let status = f.mosquitto_sub("plastic/pi-1/status");
    let first = presence_line(&status, "online");
    // A thread nothing can stop: not a script (no tracer), not a request (not interruptible).
    f.ok(&[
        "exec",
        "pi-1",
        "import _thread\ndef spin():\n    while True: pass\n_thread.start_new_thread(spin, ())",
    ]);
    assert!(cpu_share(pid, Duration::from_millis(500)) > 0.5, "spinning");

    assert_eq!(f.ok(&["reset", "pi-1"]), "resetting\n");
    presence_line(&status, "offline");
    let again = presence_line(&status, "online");
    assert_ne!(first["boot"], again["boot"], "a new boot id");
    assert!(again["boot"].is_string());
    f.node_proc("pi-1").wait_contains("restarting");

    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    let share = cpu_share(pid, Duration::from_secs(1));
    assert!(share < 0.1, "the node still uses {share:.2} of a core");
}
