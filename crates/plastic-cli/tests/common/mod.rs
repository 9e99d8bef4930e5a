//! End-to-end harness: real `plastic` processes, a real broker (the embedded hub or Mosquitto)
//! on 127.0.0.1 with a free port, and Mosquitto's own command-line clients as a third-party
//! peer. Waits are on events (a line a process prints), never on fixed sleeps.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod proxy;

pub const WAIT: Duration = Duration::from_secs(20);

/// The seed's messages, as its author wrote them (tuples become JSON lists).
pub const SEED_READ_GPIOS: &str =
    r#"{"type": "command", "command": "read GPIOs", "need_result": true}"#;
pub const SEED_WRITE_GPIOS: &str = r#"{"type": "command", "command": "write GPIOs", "kwargs": {"pins_and_values": [[2, 0], [2, 1], [2, 0]]}}"#;
pub const SEED_EVAL: &str = r#"{"type": "eval", "to_evaluate": "2+3", "need_result": true}"#;
pub const SEED_EXEC: &str = r#"{"type": "exec", "to_exec": "print(\"Testing exec !\")"}"#;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BrokerKind {
    /// `plastic hub` with its embedded rmqtt.
    Embedded,
    /// Mosquitto from Debian, proving nothing depends on the embedded broker.
    Mosquitto,
}

/// The binary under test, kept away from the user's own `~/.plastic` (users, keys, CA):
/// `PLASTIC_HOME` is a directory of this test process.
pub fn plastic() -> Command {
    let home = std::env::temp_dir().join(format!("plastic-test-home-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plastic"));
    cmd.env("PLASTIC_HOME", home);
    for var in [
        "PLASTIC_USERS",
        "PLASTIC_KEYS",
        "PLASTIC_CA",
        "PLASTIC_NODE_KEY_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A child process whose output lines (stdout and stderr, merged) can be awaited.
pub struct Proc {
    pub child: Child,
    lines: Mutex<Receiver<String>>,
    seen: Arc<Mutex<Vec<String>>>,
    what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command, what: &str) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = channel();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let tx = tx.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    seen.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        Proc {
            child,
            lines: Mutex::new(lines),
            seen,
            what: what.to_owned(),
        }
    }

    /// Waits for the next line that satisfies `pred` (earlier unmatched lines are consumed).
    pub fn wait_line(&self, pred: impl Fn(&str) -> bool, why: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.lock().unwrap().recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: no line {why} within {WAIT:?}; output so far:\n{}",
                    self.what,
                    self.seen.lock().unwrap().join("\n")
                ),
            }
        }
    }

    pub fn wait_contains(&self, needle: &str) -> String {
        self.wait_line(|l| l.contains(needle), &format!("containing {needle:?}"))
    }

    pub fn signal(&mut self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(&mut self) {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
    }

    /// SIGKILL: the process gets no chance to say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn output_so_far(&self) -> String {
        self.seen.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Broker {
    pub kind: BrokerKind,
    pub port: u16,
    proc: Proc,
    dir: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Broker {
    pub fn start(kind: BrokerKind, dir: &Path) -> Broker {
        let port = match kind {
            BrokerKind::Embedded => 0,
            BrokerKind::Mosquitto => free_port(),
        };
        Self::start_on(kind, dir, port)
    }

    fn start_on(kind: BrokerKind, dir: &Path, port: u16) -> Broker {
        match kind {
            BrokerKind::Embedded => {
                let mut cmd = plastic();
                cmd.args(["hub", "--listen", &format!("127.0.0.1:{port}")])
                    .env_remove("PLASTIC_BROKER");
                let proc = Proc::spawn(cmd, "plastic hub");
                let line = proc.wait_contains("MQTT broker listening on");
                let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
                Broker {
                    kind,
                    port,
                    proc,
                    dir: dir.to_owned(),
                }
            }
            BrokerKind::Mosquitto => {
                let conf = dir.join(format!("mosquitto-{port}.conf"));
                std::fs::write(
                    &conf,
                    format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nuser root\nlog_type all\n"),
                )
                .unwrap();
                let mut cmd = Command::new(which("mosquitto"));
                cmd.arg("-c").arg(&conf);
                let proc = Proc::spawn(cmd, "mosquitto");
                proc.wait_contains("running");
                Broker {
                    kind,
                    port,
                    proc,
                    dir: dir.to_owned(),
                }
            }
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The hub's console (embedded only).
    pub fn console(&self) -> &Proc {
        &self.proc
    }

    /// Kills the broker outright (SIGKILL), for good.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Kills the broker outright and starts a new one on the same port.
    pub fn restart(&mut self) {
        self.proc.kill();
        let fresh = Self::start_on(self.kind, &self.dir, self.port);
        *self = fresh;
    }
}

/// `plastic node --name NAME --broker URL --root ROOT EXTRA...`, once it says it is online.
pub fn start_node(name: &str, broker: &str, root: &Path, extra: &[&str]) -> Proc {
    let mut cmd = plastic();
    cmd.args(["node", "--name", name, "--broker", broker])
        .arg("--root")
        .arg(root)
        .args(extra);
    let proc = Proc::spawn(cmd, &format!("node {name}"));
    proc.wait_contains("online");
    proc
}

pub fn which(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} is not installed (apt-get install mosquitto mosquitto-clients)");
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub struct Fleet {
    pub broker: Broker,
    pub dir: tempfile::TempDir,
    pub nodes: Vec<(String, Proc)>,
}

impl Fleet {
    pub fn new(kind: BrokerKind) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(kind, dir.path());
        Fleet {
            broker,
            dir,
            nodes: Vec::new(),
        }
    }

    pub fn root_of(&self, node: &str) -> PathBuf {
        self.dir.path().join("nodes").join(node)
    }

    /// Starts `plastic node` and waits until it has announced itself.
    pub fn node(&mut self, name: &str, groups: &[&str]) -> &mut Proc {
        let extra: Vec<&str> = groups.iter().flat_map(|g| ["--group", g]).collect();
        self.node_with(name, &extra)
    }

    /// [`Fleet::node`] with extra `plastic node` arguments (`--key-file F`, ...).
    pub fn node_with(&mut self, name: &str, extra: &[&str]) -> &mut Proc {
        let proc = start_node(name, &self.broker.url(), &self.root_of(name), extra);
        self.nodes.push((name.to_owned(), proc));
        &mut self.nodes.last_mut().unwrap().1
    }

    pub fn node_proc(&mut self, name: &str) -> &mut Proc {
        &mut self
            .nodes
            .iter_mut()
            .find(|(n, _)| n == name)
            .expect("started node")
            .1
    }

    pub fn cli(&self, args: &[&str]) -> Out {
        let out = plastic()
            .args(args)
            .env("PLASTIC_BROKER", self.broker.url())
            .env_remove("PLASTIC_PREFIX")
            .current_dir(self.dir.path())
            .output()
            .expect("running plastic");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the CLI with `input` on its stdin (a pipe, not a terminal).
    pub fn cli_stdin(&self, args: &[&str], input: &str) -> Out {
        use std::io::Write;
        let mut child = plastic()
            .args(args)
            .env("PLASTIC_BROKER", self.broker.url())
            .env_remove("PLASTIC_PREFIX")
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running plastic");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("running plastic");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs the CLI and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert_eq!(out.code, 0, "plastic {args:?} failed: {out:?}");
        out.stdout
    }

    /// `plastic watch --json`, running and subscribed.
    pub fn watch(&self) -> Proc {
        let mut cmd = plastic();
        cmd.args(["watch", "--json", "--broker", &self.broker.url()]);
        let proc = Proc::spawn(cmd, "plastic watch");
        proc.wait_contains("watching");
        proc
    }

    /// Publishes a raw payload to a topic with Mosquitto's own client.
    pub fn mosquitto_pub(&self, topic: &str, payload: &[u8]) {
        self.mosquitto_pub_with(topic, payload, &[]);
    }

    /// [`Fleet::mosquitto_pub`] with extra mosquitto_pub options (`-r` for retained).
    pub fn mosquitto_pub_with(&self, topic: &str, payload: &[u8], extra: &[&str]) {
        let file = self
            .dir
            .path()
            .join(format!("payload-{}", std::process::id()));
        std::fs::write(&file, payload).unwrap();
        let status = Command::new(which("mosquitto_pub"))
            .args(self.mosquitto_args(topic))
            .args(extra)
            .arg("-f")
            .arg(&file)
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// Broker, QoS 1 and topic, as Mosquitto's command-line clients take them.
    fn mosquitto_args(&self, topic: &str) -> Vec<String> {
        let port = self.broker.port.to_string();
        ["-h", "127.0.0.1", "-p", &port, "-q", "1", "-t", topic]
            .map(str::to_owned)
            .to_vec()
    }

    /// Subscribes with mosquitto_sub, returns once subscribed; read lines with `wait_line`.
    pub fn mosquitto_sub(&self, topic: &str) -> Proc {
        // stdbuf: mosquitto_sub block-buffers stdout into a pipe, which would hide the SUBACK line.
        let mut cmd = Command::new(which("stdbuf"));
        cmd.arg("-oL")
            .arg(which("mosquitto_sub"))
            .args(self.mosquitto_args(topic))
            .arg("-d");
        let proc = Proc::spawn(cmd, "mosquitto_sub");
        proc.wait_contains("SUBACK");
        proc
    }
}

/// Generates one `#[test]` per scenario and broker.
#[macro_export]
macro_rules! on_both_brokers {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $name() { super::$name(super::common::BrokerKind::Embedded) } )*
        }
        mod mosquitto {
            $( #[test] fn $name() { super::$name(super::common::BrokerKind::Mosquitto) } )*
        }
    };
}

/// Runs a command to its end and collects what it printed.
pub fn run(cmd: &mut Command) -> Out {
    let out = cmd.output().expect("running plastic");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `plastic user add` into the users file `users`, returning the password it made up (and
/// checking the file holds no password in clear).
pub fn add_user(users: &Path, name: &str, role: &str, extra: &[&str]) -> String {
    let out = run(plastic()
        .args(["user", "add", name, "--role", role, "--users"])
        .arg(users)
        .args(extra));
    assert_eq!(out.code, 0, "{out:?}");
    let password = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password printed: {out:?}"))
        .to_owned();
    let text = std::fs::read_to_string(users).unwrap();
    assert!(
        !text.contains(&password),
        "the users file holds a password in clear"
    );
    password
}

/// `plastic hub --listen 127.0.0.1:0 --users FILE EXTRA...`, once it listens with
/// authentication on; returns it with its port.
pub fn hub_with_users(users: &Path, extra: &[&str]) -> (Proc, u16) {
    let mut cmd = plastic();
    cmd.args(["hub", "--listen", "127.0.0.1:0", "--users"])
        .arg(users)
        .args(extra)
        .env_remove("PLASTIC_BROKER");
    let hub = Proc::spawn(cmd, "plastic hub");
    let line = hub.wait_contains("MQTT broker listening on");
    let port = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    hub.wait_contains("authentication on");
    (hub, port)
}

/// After a broker was killed under load: reads each node's `ran` list (the indices of the
/// requests it executed), retrying while the node is still reconnecting (at most 60 s), and
/// asserts that none ran twice and every acknowledged one ran. Returns (ran in all, ran but
/// not acknowledged).
pub async fn assert_each_ran_once(
    client: &plastic_client::Client,
    names: &[plastic_proto::NodeName],
    acknowledged: &std::collections::BTreeMap<String, std::collections::BTreeSet<usize>>,
) -> (usize, usize) {
    use plastic_proto::Operation;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut ran_total, mut ran_unacknowledged) = (0, 0);
    for node in names {
        let reply = loop {
            assert!(Instant::now() < deadline, "{node} never answered again");
            match client
                .request(
                    node,
                    plastic_proto::command::Eval::new("ran").to_request(),
                    Duration::from_secs(5),
                )
                .await
            {
                Ok(r) if r.ok => break r,
                Ok(r) => panic!("{node}: {r:?}"),
                // Still reconnecting.
                Err(plastic_client::ClientError::Timeout { .. }) => continue,
                Err(e) => panic!("{node}: {e}"),
            }
        };
        let ran: Vec<usize> = match reply.result {
            serde_json::Value::Array(items) => {
                items.iter().map(|v| v.as_u64().unwrap() as usize).collect()
            }
            other => panic!("{node}: {other:?}"),
        };
        let unique: std::collections::BTreeSet<usize> = ran.iter().copied().collect();
        assert_eq!(
            unique.len(),
            ran.len(),
            "{node} ran a request twice: {ran:?}"
        );
        let acked = acknowledged.get(node.as_str()).cloned().unwrap_or_default();
        let lost: Vec<_> = acked.difference(&unique).collect();
        assert!(
            lost.is_empty(),
            "{node}: acknowledged but not run: {lost:?}"
        );
        ran_total += ran.len();
        ran_unacknowledged += unique.difference(&acked).count();
    }
    (ran_total, ran_unacknowledged)
}
