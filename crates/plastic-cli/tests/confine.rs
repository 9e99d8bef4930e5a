//! Hardening a Rust node: `plastic node --confine` (Landlock), file operations that never
//! follow a link out of the node's root, and a broker password Python on the node cannot read.
//! Real processes on 127.0.0.1; the confined ones need a kernel with Landlock ABI 3 or newer.

mod common;

use std::path::Path;

use common::{plastic, repo_file, start_node, BrokerKind, Fleet, Out, Proc};
use serde_json::Value;

/// A Python expression's value on `node`, as JSON; panics on an error reply.
fn eval(f: &Fleet, node: &str, expr: &str) -> Value {
    let out = f.ok(&["eval", node, expr]);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{expr}: {out}: {e}"))
}

/// Runs `code` on `node` and returns the exception it raised: (kind, message).
fn error_of(f: &Fleet, node: &str, code: &str) -> (String, String) {
    let out = f.cli(&["--json", "exec", node, code]);
    let line: Value = serde_json::from_str(out.stdout.lines().next().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{code}: {out:?}: {e}"));
    assert_eq!(line["ok"], false, "{code} should have failed: {out:?}");
    (
        line["error"]["kind"].as_str().unwrap().to_owned(),
        line["error"]["message"].as_str().unwrap_or("").to_owned(),
    )
}

fn confined(f: &mut Fleet, name: &str) {
    let proc = f.node_with(name, &["--confine"]);
    let line = proc.output_so_far();
    assert!(
        line.contains("confined by Landlock ABI"),
        "the node did not say it is confined:\n{line}"
    );
}

#[test]
fn a_confined_node_cannot_read_write_or_run_anything_outside_its_root() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    confined(&mut f, "jail");
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let precious = outside.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    let p = precious.to_str().unwrap();
    let o = outside.to_str().unwrap();

    // Reading: /etc/passwd, a file of the same user, the process's own memory and environment.
    for path in ["/etc/passwd", p, "/proc/self/environ", "/proc/self/mem"] {
        let (kind, message) = error_of(&f, "jail", &format!("open('{path}', 'rb').read(10)"));
        assert_eq!(kind, "PermissionError", "{path}: {message}");
    }
    // Also from a deployed script's own thread, not only the engine's.
    let watch = f.watch();
    let script = f.dir.path().join("peek.py");
    std::fs::write(
        &script,
        "try:\n    open('/etc/passwd').read()\n    print('peek: read it')\n\
         except OSError as e:\n    print('peek:', type(e).__name__)\n",
    )
    .unwrap();
    f.ok(&["run", "jail", script.to_str().unwrap()]);
    let line = watch.wait_contains("peek:");
    assert!(line.contains("peek: PermissionError"), "{line}");

    // Writing outside: overwrite, create, truncate, remove, rename out.
    for code in [
        format!("open('{p}', 'w').write('pwned')"),
        format!("open('{o}/new.txt', 'w').write('pwned')"),
        format!("import posix as os\nos.truncate('{p}', 0)"),
        format!("import posix as os\nos.remove('{p}')"),
        format!("import posix as os\nos.mkdir('{o}/newdir')"),
        "open('/tmp/plastic-confine-probe', 'w').write('x')".to_owned(),
    ] {
        let (kind, message) = error_of(&f, "jail", &code);
        assert_eq!(kind, "PermissionError", "{code}: {message}");
    }
    // Renaming a file of the root out of it.
    f.ok(&["exec", "jail", "open('leaving.txt', 'w').write('mine')"]);
    let (kind, message) = error_of(
        &f,
        "jail",
        &format!("import posix as os\nos.rename('leaving.txt', '{o}/left.txt')"),
    );
    assert!(
        kind == "PermissionError" || message.contains("Errno 18"),
        "rename out: {kind}: {message}"
    );
    assert!(f.root_of("jail").join("leaving.txt").exists());
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
    assert!(!Path::new("/tmp/plastic-confine-probe").exists());

    // Running programs: a shell through system(), exec of `id`.
    // The shell cannot be executed: the status a shell that was not found gives, 127 << 8.
    let status = eval(&f, "jail", "__import__('posix').system('id')");
    assert_eq!(status, Value::from(127 << 8), "system('id')");
    let (kind, message) = error_of(
        &f,
        "jail",
        "import posix as os\nos.execv('/usr/bin/id', ['id'])",
    );
    assert_eq!(kind, "PermissionError", "{message}");
    assert!(
        !f.node_proc("jail").output_so_far().contains("uid="),
        "`id` printed on the node's console"
    );
    // Its own root stays its own: write, read back, list, remove.
    f.ok(&["exec", "jail", "open('notes.txt', 'w').write('mine')"]);
    assert_eq!(eval(&f, "jail", "open('notes.txt').read()"), "mine");
    assert_eq!(
        std::fs::read_to_string(f.root_of("jail").join("notes.txt")).unwrap(),
        "mine"
    );
    f.ok(&[
        "exec",
        "jail",
        "import posix as os\nos.mkdir('sub')\nos.remove('notes.txt')",
    ]);
    assert!(f.root_of("jail").join("sub").is_dir());
    // `info` still reports memory (it reads /proc/meminfo and /proc/self/status).
    let info: Value = serde_json::from_str(&f.ok(&["info", "jail"])).unwrap();
    assert!(info["free_memory"].as_u64().unwrap_or(0) > 0, "{info}");
    assert!(info["mem_peak"].as_u64().unwrap_or(0) > 0, "{info}");
}

#[test]
fn a_confined_node_passes_the_seed_demo() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    confined(&mut f, "pi-1");
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
    assert_eq!(
        f.ok(&["send", "pi-1", common::SEED_EXEC]),
        "Testing exec !\nnull\n"
    );
    let read = f.ok(&["send", "pi-1", common::SEED_READ_GPIOS]);
    assert!(read.starts_with("[[0,1],[1,1],[2,"), "{read}");
    assert_eq!(
        f.ok(&["send", "pi-1", common::SEED_WRITE_GPIOS]),
        "[[2,0]]\n"
    );
    assert_eq!(
        f.ok(&["blink", "pi-1", "--times", "3", "--on", "0.01", "--off", "0.01"]),
        "blinking 3 times\n"
    );
    // Deploy the seed's script, see it print and drive the LED, stop it.
    let watch = f.watch();
    let script = repo_file("examples/script_to_deploy.py");
    assert_eq!(
        f.ok(&["run", "pi-1", script.to_str().unwrap()]),
        "script `script_to_deploy` started\n"
    );
    watch.wait_contains("deployed from remote");
    let stopped = f.ok(&["stop", "pi-1"]);
    assert!(
        stopped.starts_with("stopped: script_to_deploy"),
        "{stopped}"
    );
    // cp + import + call.
    let functions = repo_file("examples/functions.py");
    let out = f.ok(&["cp", functions.to_str().unwrap(), "pi-1:functions.py"]);
    assert!(out.contains("verified"), "{out}");
    f.ok(&["exec", "pi-1", "import functions"]);
    assert_eq!(
        f.ok(&["call", "pi-1", "functions.add", r#"{"a":2,"b":3}"#]),
        "5\n"
    );
    let listing = f.ok(&[
        "send",
        "pi-1",
        r#"{"type": "command", "command": "list files"}"#,
    ]);
    assert!(listing.contains("functions.py"), "{listing}");
    assert_eq!(f.ok(&["ping", "pi-1"]), "\"pong\"\n");
    // `reset`: no program may start, so the node starts afresh in its process, still confined.
    f.ok(&["exec", "pi-1", "counter = 41"]);
    let reset = r#"{"type": "command", "command": "reset"}"#;
    f.ok(&["send", "--no-wait", "pi-1", reset]);
    let node = f.node_proc("pi-1");
    node.wait_contains("restarting in this process");
    node.wait_contains("online");
    let out = f.cli(&["eval", "pi-1", "counter"]);
    assert!(out.code == 1 && out.stderr.contains("NameError"), "{out:?}");
    let (kind, _) = error_of(&f, "pi-1", "open('/etc/passwd').read()");
    assert_eq!(kind, "PermissionError");
    assert_eq!(f.ok(&["eval", "pi-1", "2+3"]), "5\n");
}

#[test]
fn file_operations_never_follow_a_link_out_of_the_root() {
    let mut f = Fleet::new(BrokerKind::Embedded);
    f.node("pi-1", &[]);
    let root = f.root_of("pi-1");
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let precious = outside.join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    std::os::unix::fs::symlink(&precious, root.join("evil.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
    let local = f.dir.path().join("upload.txt");
    std::fs::write(&local, "pwned").unwrap();
    let local = local.to_str().unwrap();

    // Into a linked directory: refused, nothing lands outside.
    for target in [
        "linked/precious.txt",
        "linked/new.txt",
        "linked/deep/new.txt",
    ] {
        let out = f.cli(&["cp", local, &format!("pi-1:{target}")]);
        assert!(
            out.code != 0 && out.stderr.contains("symbolic link"),
            "{target}: {out:?}"
        );
    }
    // Onto a link: the link is replaced by a file in the root.
    f.ok(&["cp", local, "pi-1:evil.txt"]);
    assert!(std::fs::symlink_metadata(root.join("evil.txt"))
        .unwrap()
        .is_file());
    // Links are not listed and not walked into.
    let listing = f.ok(&[
        "send",
        "pi-1",
        r#"{"type": "command", "command": "list files"}"#,
    ]);
    assert!(
        !listing.contains("linked") && !listing.contains("precious"),
        "{listing}"
    );
    // Removing through a linked directory is refused; removing a link removes the link only.
    let rm = |name: &str| {
        let msg = serde_json::json!({"type": "command", "command": "remove file", "kwargs": {"filename": name}});
        f.cli(&["send", "pi-1", &msg.to_string()])
    };
    let out: Out = rm("linked/precious.txt");
    assert!(
        out.code == 1 && out.stderr.contains("symbolic link"),
        "{out:?}"
    );
    std::os::unix::fs::symlink(&precious, root.join("evil2.txt")).unwrap();
    let out = rm("evil2.txt");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(std::fs::symlink_metadata(root.join("evil2.txt")).is_err());

    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing was created outside"
    );
}

/// A hub with users: a node connects only with its right password, so a node that comes
/// online proves its password survived being hidden.
struct AuthHub {
    _hub: Proc,
    port: u16,
    passwords: std::collections::HashMap<String, String>,
}

impl AuthHub {
    /// Adds `users` (name, role) to a new users file, then starts the hub on it.
    fn start(dir: &Path, users: &[(&str, &str)]) -> AuthHub {
        let file = dir.join("users.toml");
        let mut passwords = std::collections::HashMap::new();
        for (name, role) in users {
            let password = common::add_user(&file, name, role, &[]);
            passwords.insert(name.to_string(), password);
        }
        let (hub, port) = common::hub_with_users(&file, &[]);
        AuthHub {
            _hub: hub,
            port,
            passwords,
        }
    }

    fn password(&self, user: &str) -> &str {
        &self.passwords[user]
    }

    fn url(&self, user: &str, with_password: bool) -> String {
        if with_password {
            let p = self.password(user);
            format!("mqtt://{user}:{p}@127.0.0.1:{}", self.port)
        } else {
            format!("mqtt://{user}@127.0.0.1:{}", self.port)
        }
    }

    /// The CLI as the admin.
    fn cli(&self, args: &[&str]) -> Out {
        let out = plastic()
            .args(args)
            .env("PLASTIC_BROKER", self.url("admin", true))
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// What Python on `node` finds when it reads `path` (or the exception's kind).
    fn python_reads(&self, node: &str, path: &str) -> String {
        let code = format!(
            "try:\n    r = open('{path}', 'rb').read().replace(b'\\0', b' ').decode('utf-8', 'replace')\n\
             except OSError as e:\n    r = type(e).__name__\nprint(r)"
        );
        let out = self.cli(&["exec", node, &code]);
        assert_eq!(out.code, 0, "{out:?}");
        out.stdout
    }
}

#[test]
fn the_node_password_is_not_readable_from_python_on_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let hub = AuthHub::start(
        dir.path(),
        &[
            ("admin", "admin"),
            ("lab-1", "node"),
            ("lab-2", "node"),
            ("lab-3", "node"),
        ],
    );
    let mut nodes = Vec::new();
    // lab-1: the password in --broker on the command line (what `ps` shows to everyone).
    nodes.push(start_node(
        "lab-1",
        &hub.url("lab-1", true),
        &dir.path().join("lab-1"),
        &[],
    ));
    // lab-2: the password in the environment, PLASTIC_PASSWORD.
    let mut cmd = plastic();
    cmd.args(["node", "--name", "lab-2", "--root"])
        .arg(dir.path().join("lab-2"))
        .env("PLASTIC_BROKER", hub.url("lab-2", false))
        .env("PLASTIC_PASSWORD", hub.password("lab-2"));
    let lab2 = Proc::spawn(cmd, "node lab-2");
    lab2.wait_contains("online");
    nodes.push(lab2);
    // lab-3: a password file, confined.
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let password_file = secrets.join("lab-3.password");
    std::fs::write(&password_file, format!("{}\n", hub.password("lab-3"))).unwrap();
    nodes.push(start_node(
        "lab-3",
        &hub.url("lab-3", false),
        &dir.path().join("lab-3"),
        &[
            "--confine",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    ));

    for (node, proc) in ["lab-1", "lab-2"].into_iter().zip(&nodes) {
        let password = hub.password(node);
        let environ = hub.python_reads(node, "/proc/self/environ");
        let cmdline = hub.python_reads(node, "/proc/self/cmdline");
        // Read for real: the node's own command line is there, without the password.
        assert!(cmdline.contains(&format!("--name {node}")), "{cmdline:?}");
        assert!(environ.contains("PLASTIC_HOME="), "{environ:?}");
        assert!(!environ.contains(password), "{node}: environ has it");
        assert!(!cmdline.contains(password), "{node}: cmdline has it");
        let env = hub.cli(&["exec", node, "import posix as os\nprint(dict(os.environ))"]);
        assert!(!env.stdout.contains(password), "{node}: os.environ has it");
        // What other local users see (`ps`), and the process's environment from outside.
        let pid = proc.child.id();
        for what in ["cmdline", "environ"] {
            let seen = std::fs::read(format!("/proc/{pid}/{what}")).unwrap();
            assert!(
                !String::from_utf8_lossy(&seen).contains(password),
                "{node}: /proc/{pid}/{what} has it"
            );
        }
    }
    // After a `reset` (the program starts again) the password is handed on, still hidden.
    let reset = r#"{"type": "command", "command": "reset"}"#;
    for (node, proc) in ["lab-1", "lab-2"].into_iter().zip(&nodes) {
        let out = hub.cli(&["send", "--no-wait", node, reset]);
        assert_eq!(out.code, 0, "{out:?}");
        proc.wait_contains("restarting");
        proc.wait_contains("online");
        let password = hub.password(node);
        for path in ["/proc/self/environ", "/proc/self/cmdline"] {
            assert!(
                !hub.python_reads(node, path).contains(password),
                "{node}: {path}"
            );
        }
    }
    // Confined: neither the password file nor the process's memory or environment opens.
    for path in [
        password_file.to_str().unwrap(),
        "/proc/self/environ",
        "/proc/self/mem",
    ] {
        assert_eq!(
            hub.python_reads("lab-3", path).trim(),
            "PermissionError",
            "{path}"
        );
    }
    // A credential where Python could read it is refused outright.
    let root = dir.path().join("lab-4");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("pw"), "x\n").unwrap();
    let out = plastic()
        .args(["node", "--name", "lab-4", "--confine", "--broker"])
        .arg(hub.url("lab-4", false))
        .arg("--root")
        .arg(&root)
        .arg("--password-file")
        .arg(root.join("pw"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("keep credentials outside"),
        "{stderr}"
    );
    // So is a node key there (the password file outside the root this time).
    std::fs::write(root.join("node.key"), format!("{}\n", "ab".repeat(32))).unwrap();
    let out = plastic()
        .args(["node", "--name", "lab-4", "--confine", "--broker"])
        .arg(hub.url("lab-4", false))
        .arg("--root")
        .arg(&root)
        .arg("--password-file")
        .arg(&password_file)
        .arg("--key-file")
        .arg(root.join("node.key"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("--key-file")
            && stderr.contains("keep credentials outside"),
        "{stderr}"
    );
}

#[test]
fn a_confined_node_reconnects_over_tls_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = plastic()
        .args(["certs", "init", "--name", "localhost", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (cert, key, ca) = (
        dir.path().join("hub.pem"),
        dir.path().join("hub.key"),
        dir.path().join("ca.pem"),
    );
    let port = common::free_port();
    let hub = || {
        let mut cmd = plastic();
        cmd.args(["hub", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .env_remove("PLASTIC_BROKER");
        let proc = Proc::spawn(cmd, "plastic hub");
        proc.wait_contains("MQTT broker listening on");
        proc
    };
    let mut first = hub();
    // By name: the resolver's files must stay readable.
    let url = format!("mqtts://localhost:{port}");
    let node = start_node(
        "tls-1",
        &url,
        &dir.path().join("tls-1"),
        &["--confine", "--ca", ca.to_str().unwrap()],
    );
    let cli = |args: &[&str]| {
        let out = plastic()
            .args(args)
            .env("PLASTIC_BROKER", &url)
            .env("PLASTIC_CA", &ca)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(cli(&["eval", "tls-1", "2+3"]).1, "5\n");
    // The CA certificate is readable (it is read again after a `reset`); the key next to it
    // is not.
    let (code, _, _) = cli(&[
        "eval",
        "tls-1",
        &format!("open('{}').read(5)", ca.display()),
    ]);
    assert_eq!(code, Some(0));
    let (code, _, stderr) = cli(&[
        "eval",
        "tls-1",
        &format!("open('{}').read()", key.display()),
    ]);
    assert!(
        code == Some(1) && stderr.contains("PermissionError"),
        "{stderr}"
    );
    // The hub goes away and comes back: the node resolves, connects and verifies again.
    first.kill();
    let _second = hub();
    node.wait_contains("online");
    assert_eq!(cli(&["eval", "tls-1", "2+3"]).1, "5\n");
    // After a `reset` it starts afresh in its process: the CA is read again, still confined.
    let reset = r#"{"type": "command", "command": "reset"}"#;
    // (--no-wait: the `resetting` reply can lose the race with the `offline` presence.)
    let out = cli(&["send", "--no-wait", "tls-1", reset]);
    assert_eq!(out.0, Some(0), "{out:?}");
    node.wait_contains("restarting in this process");
    node.wait_contains("online");
    assert_eq!(cli(&["eval", "tls-1", "2+3"]).1, "5\n");
}
