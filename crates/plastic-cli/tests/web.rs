//! The hub's HTTP side over real HTTP: a `plastic hub --http 127.0.0.1:0` process, real nodes,
//! requests written by hand on a TCP socket (so that Host, Cookie and CSRF headers are exactly
//! what an attacker would send).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{add_user, plastic, run, start_node, Proc};
use serde_json::{json, Value};

/// One HTTP/1.1 exchange on a fresh connection.
struct Http {
    port: u16,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// The refusal's message (`{"error": {"message"}}`).
    fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
    /// `name=value` of the Set-Cookie header, as a browser sends it back.
    fn cookie(&self) -> String {
        let set = self.header("set-cookie").expect("a Set-Cookie header");
        set.split(';').next().unwrap().to_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Http {
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        parse(&read_response(&mut s))
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.call("GET", path, headers, b"")
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: &Value) -> Resp {
        let mut h = headers.to_vec();
        h.push(("Content-Type", "application/json"));
        self.call("POST", path, &h, body.to_string().as_bytes())
    }
}

/// One response's bytes: up to its Content-Length or chunked end, else to the end of the
/// connection (some servers keep it open whatever `Connection: close` said).
fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
        let body = &raw[split + 4..];
        if let Some(len) = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            if body.len() >= len {
                return raw;
            }
        } else if head.contains("transfer-encoding: chunked") && body.ends_with(b"0\r\n\r\n") {
            return raw;
        }
    }
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap().trim(), 16)
                .unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[end + 2..end + 2 + n]);
            rest = &rest[end + 2 + n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// `plastic hub` with the web side on a free port; returns (hub, MQTT port, HTTP port).
fn hub(extra: &[&str], home: &Path) -> (Proc, u16, u16) {
    let mut cmd = plastic();
    cmd.args(["hub", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--history")
        .arg(home.join("history.db"))
        .args(extra)
        .env_remove("PLASTIC_BROKER");
    let hub = Proc::spawn(cmd, "plastic hub");
    let line = hub.wait_contains("MQTT broker listening on");
    let mqtt = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap();
    let line = hub.wait_contains("dashboard and API on");
    let http = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (hub, mqtt, http)
}

fn wait_online(http: &Http, headers: &[(&str, &str)], names: &[&str]) {
    for _ in 0..500 {
        let nodes = http.get("/api/v1/nodes", headers).json();
        let online = |n: &str| {
            nodes
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == n && p["state"] == "online")
        };
        if names.iter().all(|n| online(n)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{names:?} never online through the API");
}

#[test]
fn open_hub_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, mqtt, port) = hub(&[], dir.path());
    let url = format!("mqtt://127.0.0.1:{mqtt}");
    let _n1 = start_node("web-1", &url, &dir.path().join("n1"), &[]);
    let _n2 = start_node("web-2", &url, &dir.path().join("n2"), &[]);
    let http = Http { port };
    wait_online(&http, &[], &["web-1", "web-2"]);
    // Each node's presence carries its uptime and free memory, and `age` says how old it is.
    let nodes = http.get("/api/v1/nodes", &[]).json();
    for p in nodes.as_array().unwrap() {
        assert!(p["uptime"].as_f64().is_some_and(|u| u >= 0.0), "{p}");
        assert!(p["mem_free"].as_u64().is_some_and(|m| m > 0), "{p}");
        assert!(
            p["age"].as_f64().is_some_and(|a| (0.0..60.0).contains(&a)),
            "{p}"
        );
    }

    // DNS rebinding: another name pointed at 127.0.0.1 is refused, whatever the path.
    let r = http.get("/api/v1/nodes", &[("Host", "evil.example:80")]);
    assert_eq!(r.status, 421);
    assert_eq!(r.json()["error"]["kind"], "BadHost");

    // A change without the CSRF token is refused and runs nothing.
    let eval = json!({"target": "all", "message": {"type": "exec", "to_exec": "open('pwned','w').write('x')"}});
    let r = http.post("/api/v1/requests", &[], &eval);
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error"]["kind"], "CsrfRefused");
    assert!(!dir.path().join("n1/pwned").exists());

    let session = http.get("/api/v1/session", &[]).json();
    assert_eq!(session["authentication"], false);
    let csrf = session["csrf"].as_str().unwrap().to_owned();
    let h = [("X-CSRF-Token", csrf.as_str())];

    // The seed's dict as written, to every node; each answers once.
    let r = http.post(
        "/api/v1/requests",
        &h,
        &json!({"target": "all", "message": {"type": "eval", "to_evaluate": "2+3", "need_result": true}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 2);
    for (res, node) in results.iter().zip(["web-1", "web-2"]) {
        assert_eq!(res["node"], node);
        assert_eq!(res["ok"], true);
        assert_eq!(res["result"], 5);
    }
    // Falsy results come back intact; errors with kind and traceback.
    for (expr, want) in [
        ("0", json!(0)),
        ("[]", json!([])),
        ("False", json!(false)),
        ("''", json!("")),
        ("None", Value::Null),
    ] {
        let r = http.post(
            "/api/v1/requests",
            &h,
            &json!({"target": "web-1", "message": {"type": "eval", "to_evaluate": expr}}),
        );
        let res = &r.json()["results"][0];
        assert_eq!(res["ok"], true, "{expr}: {res}");
        assert_eq!(res["result"], want, "{expr}");
    }
    let r = http.post(
        "/api/v1/requests",
        &h,
        &json!({"target": "web-2", "message": {"type": "eval", "to_evaluate": "1/0"}}),
    );
    let res = &r.json()["results"][0];
    assert_eq!(res["ok"], false);
    assert_eq!(res["error"]["kind"], "ZeroDivisionError");
    assert!(res["error"]["traceback"]
        .as_str()
        .unwrap()
        .contains("Traceback"));

    // The envelope is the hub's: a chosen reply_to or message_id is dropped, the answer
    // still comes back to this caller under a fresh id.
    let r = http.post(
        "/api/v1/requests",
        &h,
        &json!({"target": "web-1", "message": {"type": "eval", "to_evaluate": "7", "reply_to": "victim.cli", "message_id": "chosen-id", "sender": "victim.cli"}}),
    );
    let res = &r.json()["results"][0];
    assert_eq!(res["result"], 7, "{r:?}");
    assert_ne!(res["correlation_id"], "chosen-id");
    assert!(
        res["receiver"].as_str().unwrap().starts_with("hub."),
        "{res}"
    );
    // Names in paths are checked first; a download needs the CSRF token like a change.
    let long = format!("/api/v1/nodes/{}/log", "a".repeat(5_000));
    assert_eq!(http.get(&long, &[]).status, 400);
    let r = http.get("/api/v1/nodes/web-1/files?path=x", &[]);
    assert_eq!(
        r.status, 403,
        "a download from another site's <img> is refused"
    );

    // Bad input: a clear error, nothing sent.
    for (body, kind) in [
        (json!({"target": "web-1"}), "BadRequest"),
        (
            json!({"target": "web-1", "message": {"to_evaluate": "1"}}),
            "BadRequest",
        ),
        (
            json!({"target": "bad name!", "message": {"type": "eval", "to_evaluate": "1"}}),
            "BadRequest",
        ),
        (
            json!({"target": "web-*", "message": {"type": "eval"}, "timeout": -1}),
            "BadRequest",
        ),
        (
            json!({"target": "nobody-*", "message": {"type": "eval", "to_evaluate": "1"}}),
            "NoTarget",
        ),
    ] {
        let r = http.post("/api/v1/requests", &h, &body);
        assert!(r.status >= 400 && r.status < 500, "{body}: {r:?}");
        assert_eq!(r.json()["error"]["kind"], kind, "{body}");
    }
    let r = http.call(
        "POST",
        "/api/v1/requests",
        &[
            ("X-CSRF-Token", &csrf),
            ("Content-Type", "application/json"),
        ],
        b"{not json",
    );
    assert_eq!(r.status, 400);
    let big = vec![b'x'; 600 * 1024];
    let r = http.call(
        "POST",
        "/api/v1/requests",
        &[
            ("X-CSRF-Token", &csrf),
            ("Content-Type", "application/json"),
        ],
        &big,
    );
    assert_eq!(r.status, 413, "a body over 512 KiB");

    // Files: upload (chunked to the node), then download the same bytes.
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = http.call(
        "PUT",
        "/api/v1/nodes/web-1/files?path=data/blob.bin",
        &h,
        &data,
    );
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        std::fs::read(dir.path().join("n1/data/blob.bin")).unwrap(),
        data
    );
    let r = http.get("/api/v1/nodes/web-1/files?path=data/blob.bin", &h);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    let r = http.call("PUT", "/api/v1/nodes/web-1/files?path=../escape", &h, b"x");
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(&r.body));

    // The history has the failed eval, with who and what.
    let mut failed = Value::Null;
    for _ in 0..200 {
        failed = http
            .get("/api/v1/history?node=web-2&failed=true", &[])
            .json();
        if failed.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let row = &failed[0];
    // One node, answered: the request and its outcome are one row.
    assert_eq!(row["kind"], "request");
    assert_eq!(row["ok"], false);
    assert_eq!(row["type"], "eval");
    assert_eq!(row["user"], "local (web)");
    assert!(row["detail"]
        .as_str()
        .unwrap()
        .starts_with("ZeroDivisionError"));
    // The CLI reads the same database.
    let out = run(plastic()
        .args(["history", "--node", "web-2", "--failed", "--file"])
        .arg(dir.path().join("history.db")));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("ZeroDivisionError"), "{out:?}");

    // Metrics: Prometheus text with requests by type and outcome.
    let m = http.get("/metrics", &[]);
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("plastic_nodes{state=\"online\"} 2"), "{text}");
    assert!(
        text.contains("plastic_replies_total{outcome=\"error\",type=\"eval\"}"),
        "{text}"
    );
    assert!(text.contains("plastic_request_seconds_bucket"), "{text}");

    // A script's output reaches the node's log, as `plastic logs` reads it.
    let r = http.post(
        "/api/v1/requests",
        &h,
        &json!({"target": "web-1", "message": {"type": "script", "script": "print('tail line')", "name": "t"}}),
    );
    assert_eq!(r.json()["results"][0]["ok"], true, "{r:?}");
    let mut found = false;
    for _ in 0..300 {
        let lines = http.get("/api/v1/nodes/web-1/log", &[]).json();
        if lines.to_string().contains("tail line") {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(found, "the script's line never reached the log");

    // Unknown routes: JSON 404.
    assert_eq!(
        http.get("/api/v1/nope", &[]).json()["error"]["kind"],
        "NotFound"
    );
    // The page is served, with a policy that forbids inline script.
    let page = http.get("/", &[]);
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("script-src 'self'"));
}

/// Waits (bounded) until the hub's `plastic_http_transfers` gauge reads `n`: transfers take and
/// free their slots in the hub's own time, and no event shows it from outside.
fn wait_transfers(http: &Http, n: usize) {
    let want = format!("plastic_http_transfers {n}");
    let mut running = String::new();
    for _ in 0..2000 {
        let text = String::from_utf8(http.get("/metrics", &[]).body).unwrap();
        running = text
            .lines()
            .find(|l| l.starts_with("plastic_http_transfers "))
            .unwrap_or("")
            .to_owned();
        if running == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(running, want);
}

/// Files over HTTP are streamed, not held: a 16 MiB upload (the protocol's largest file) is
/// spooled and sent chunk by chunk, a 20 MiB file on the node comes back whole with its
/// `Content-Length`, a file one byte over the limit is refused (declared or not) and leaves
/// the node's copy alone, and transfers at once are capped.
#[test]
fn files_over_http_are_streamed_and_capped() {
    const MAX: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (_hub, mqtt, port) = hub(&[], dir.path());
    let url = format!("mqtt://127.0.0.1:{mqtt}");
    let root = dir.path().join("n1");
    let _n1 = start_node("big-1", &url, &root, &[]);
    let http = Http { port };
    wait_online(&http, &[], &["big-1"]);
    let csrf = http.get("/api/v1/session", &[]).json()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let h = [("X-CSRF-Token", csrf.as_str())];

    let data: Vec<u8> = (0..MAX as u32).map(|i| (i * 31 % 253) as u8).collect();
    let r = http.call("PUT", "/api/v1/nodes/big-1/files?path=big.bin", &h, &data);
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["size"], MAX);
    assert!(std::fs::read(root.join("big.bin")).unwrap() == data);

    // One byte over: refused from the declared length before a byte of the body is read...
    let head = |framing: &str| {
        format!(
            "PUT /api/v1/nodes/big-1/files?path=big.bin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             X-CSRF-Token: {csrf}\r\n{framing}\r\nConnection: close\r\n\r\n"
        )
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(head(&format!("Content-Length: {}", MAX + 1)).as_bytes())
        .unwrap();
    let r = parse(&read_response(&mut s));
    assert_eq!(r.status, 413, "{:?}", String::from_utf8_lossy(&r.body));
    // ...and from a chunked body (no length said) once it goes over.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = head("Transfer-Encoding: chunked").into_bytes();
    for piece in vec![1u8; MAX + 1].chunks(1 << 20) {
        request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        request.extend_from_slice(piece);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&request).unwrap();
    let r = parse(&read_response(&mut s));
    assert_eq!(r.status, 413, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        std::fs::read(root.join("big.bin")).unwrap() == data,
        "a refused upload leaves the node's file as it was"
    );

    // Downloads have no size limit of their own: they are streamed.
    let bigger: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(root.join("bigger.bin"), &bigger).unwrap();
    let r = http.get("/api/v1/nodes/big-1/files?path=bigger.bin", &h);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("20971520"));
    assert!(r.body == bigger, "the streamed download differs");
    let r = http.get("/api/v1/nodes/big-1/files?path=missing.bin", &h);
    assert_eq!(r.status, 404, "{:?}", String::from_utf8_lossy(&r.body));

    // 16 uploads whose bodies never finish hold the 16 transfer slots: the next is Busy.
    let mut held = Vec::new();
    for i in 0..16 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let start = format!(
            "PUT /api/v1/nodes/big-1/files?path=held{i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             X-CSRF-Token: {csrf}\r\nContent-Length: 1000\r\n\r\nonly a start"
        );
        s.write_all(start.as_bytes()).unwrap();
        held.push(s);
    }
    // The held uploads reach their slots in their own time: wait until the hub's gauge says
    // all 16 run (a try made before would race them for a slot).
    wait_transfers(&http, 16);
    let busy = http.call("PUT", "/api/v1/nodes/big-1/files?path=one", &h, b"1");
    assert_eq!(busy.status, 503, "{busy:?}");
    assert_eq!(busy.json()["error"]["kind"], "Busy");
    assert!(
        busy.error_message().contains("16 file transfers"),
        "{busy:?}"
    );
    drop(held);
    let mut ok = false;
    for _ in 0..500 {
        let r = http.call("PUT", "/api/v1/nodes/big-1/files?path=one", &h, b"1");
        if r.status == 200 {
            ok = true;
            break;
        }
        assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ok, "slots come back when the held uploads hang up");
    // Every held slot comes back (each as the hub notices its connection closed).
    wait_transfers(&http, 0);
    for i in 0..16 {
        assert!(
            !root.join(format!("held{i}")).exists(),
            "a cut upload wrote held{i}"
        );
    }

    // The history has each transfer with its outcome (one row: request and outcome merged).
    let mut rows = Value::Null;
    for _ in 0..200 {
        rows = http
            .get("/api/v1/history?node=big-1&limit=1000", &[])
            .json();
        let done = rows.as_array().is_some_and(|a| {
            a.iter()
                .any(|r| r["type"] == "command:read file" && r["ok"] == false)
        });
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rows = rows.as_array().unwrap();
    assert!(
        rows.iter().any(|r| r["type"] == "file" && r["ok"] == true),
        "{rows:?}"
    );
    assert!(
        rows.iter().any(|r| r["type"] == "command:read file"
            && r["ok"] == false
            && r["detail"]
                .as_str()
                .unwrap_or("")
                .contains("FileNotFoundError")),
        "{rows:?}"
    );
}

#[test]
fn stream_sends_presence_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, mqtt, port) = hub(&[], dir.path());
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    // The stream is open once the hello event arrives.
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        if line.starts_with("event: hello") {
            break;
        }
    }
    let url = format!("mqtt://127.0.0.1:{mqtt}");
    let _n = start_node("stream-1", &url, &dir.path().join("n"), &[]);
    // Read until the node's presence arrives (the read timeout fails the test otherwise).
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        if line.starts_with("data:") && line.contains("\"stream-1\"") && line.contains("online") {
            break;
        }
    }
    // A log line over 4 KiB is shown live as a note of its size (kept whole for `/log`).
    let big = json!({"time": 1.0, "node": "stream-1", "source": "script", "level": "info",
        "text": "y".repeat(5000)});
    let out = run(std::process::Command::new(common::which("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &mqtt.to_string(), "-q", "1"])
        .args(["-t", "plastic/stream-1/log", "-m", &big.to_string()]));
    assert_eq!(out.code, 0, "{out:?}");
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        if line.starts_with("data:") && line.contains("stream-1") && line.contains("yyyy") {
            panic!("a 5 KB line was sent live whole: {} bytes", line.len());
        }
        if line.starts_with("data:") && line.contains("bytes, not shown live") {
            assert!(line.len() < 1024, "{line}");
            break;
        }
    }
}

#[test]
fn users_sessions_csrf_tokens_and_rules() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let admin = add_user(&users, "root", "admin", &[]);
    let viewer = add_user(&users, "vic", "viewer", &[]);
    let ops = add_user(
        &users,
        "ops",
        "operator",
        &["--allow", "eval", "--nodes", "lab-*"],
    );
    let lab = add_user(&users, "lab-1", "node", &["--nodes", "lab-*"]);
    let prod = add_user(&users, "prod-1", "node", &[]);
    let (_hub, mqtt, port) = hub(&["--users", users.to_str().unwrap()], dir.path());
    let _lab = start_node(
        "lab-1",
        &format!("mqtt://lab-1:{lab}@127.0.0.1:{mqtt}"),
        &dir.path().join("lab"),
        &[],
    );
    let _prod = start_node(
        "prod-1",
        &format!("mqtt://prod-1:{prod}@127.0.0.1:{mqtt}"),
        &dir.path().join("prod"),
        &[],
    );
    let http = Http { port };

    // No session: 401 on the API (the page itself and the login are public).
    let r = http.get("/api/v1/nodes", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["kind"], "Unauthorized");
    assert_eq!(http.get("/", &[]).status, 200);
    // Wrong password, unknown user, a node user: refused.
    let login = |user: &str, pw: &str| {
        http.post("/api/v1/login", &[], &json!({"user": user, "password": pw}))
    };
    assert_eq!(login("ops", "wrong").status, 401);
    assert_eq!(login("nobody", "x").status, 401);
    assert_eq!(
        login("lab-1", &lab).status,
        403,
        "node users are for boards"
    );

    // A good login: an HttpOnly, SameSite=Strict cookie and a CSRF token.
    let r = login("ops", &ops);
    assert_eq!(r.status, 200, "{r:?}");
    let cookie_header = r.header("set-cookie").unwrap().to_owned();
    assert!(cookie_header.contains("HttpOnly") && cookie_header.contains("SameSite=Strict"));
    let cookie = cookie_header.split(';').next().unwrap().to_owned();
    let csrf = r.json()["csrf"].as_str().unwrap().to_owned();
    let with_cookie = [("Cookie", cookie.as_str())];
    wait_online(&http, &with_cookie, &["lab-1", "prod-1"]);
    let eval =
        |target: &str| json!({"target": target, "message": {"type": "eval", "to_evaluate": "6*7"}});
    // Cookie without the CSRF token: refused.
    let r = http.post("/api/v1/requests", &with_cookie, &eval("lab-1"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["kind"], "CsrfRefused");
    let full = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = http.post("/api/v1/requests", &full, &eval("lab-1"));
    assert_eq!(r.json()["results"][0]["result"], 42, "{r:?}");
    // The same rules as MQTT: ops reaches lab-* only, and may not exec.
    let r = http.post("/api/v1/requests", &full, &eval("prod-1"));
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.error_message().contains("may only address"), "{r:?}");
    let r = http.post(
        "/api/v1/requests",
        &full,
        &json!({"target": "lab-1", "message": {"type": "exec", "to_exec": "x=1"}}),
    );
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("exec"), "{r:?}");

    // A viewer sees the fleet but cannot run anything.
    let r = login("vic", &viewer);
    let vcookie = r.cookie();
    let vcsrf = r.json()["csrf"].as_str().unwrap().to_owned();
    let vh = [
        ("Cookie", vcookie.as_str()),
        ("X-CSRF-Token", vcsrf.as_str()),
    ];
    assert_eq!(http.get("/api/v1/nodes", &vh).status, 200);
    let r = http.post(
        "/api/v1/requests",
        &vh,
        &json!({"target": "lab-1", "message": {"type": "exec", "to_exec": "open('v','w')"}}),
    );
    assert_eq!(r.status, 403);
    assert!(r.error_message().contains("viewer"), "{r:?}");
    assert!(!dir.path().join("lab/v").exists());

    // Tokens: made by the CLI, act as their user, stop working when revoked (no restart).
    let out = run(plastic()
        .args(["token", "new", "root", "--expires", "1d", "--users"])
        .arg(&users));
    assert_eq!(out.code, 0, "{out:?}");
    let token = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned();
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .to_owned();
    assert!(!std::fs::read_to_string(dir.path().join("tokens.toml"))
        .unwrap()
        .contains(&token));
    let bearer = format!("Bearer {token}");
    let th = [("Authorization", bearer.as_str())];
    let r = http.post("/api/v1/requests", &th, &eval("prod-1"));
    assert_eq!(
        r.json()["results"][0]["result"],
        42,
        "an admin's token, no CSRF needed: {r:?}"
    );
    let out = run(plastic()
        .args(["token", "revoke", &id, "--users"])
        .arg(&users));
    assert_eq!(out.code, 0, "{out:?}");
    let r = http.get("/api/v1/nodes", &th);
    assert_eq!(r.status, 401, "a revoked token is refused at once");
    assert_eq!(
        http.get("/api/v1/nodes", &[("Authorization", "Bearer plt_0000_x")])
            .status,
        401
    );

    // Logout ends the session.
    let r = http.post("/api/v1/logout", &full, &json!({}));
    assert_eq!(r.status, 200);
    assert_eq!(http.get("/api/v1/nodes", &with_cookie).status, 401);

    // The history is the audit trail: the refusals are in it, and who ran what.
    let r = login("root", &admin);
    let acookie = r.cookie();
    let ah = [("Cookie", acookie.as_str())];
    let mut rows = Value::Null;
    for _ in 0..200 {
        rows = http.get("/api/v1/history?kind=refusal", &ah).json();
        if rows.as_array().is_some_and(|a| a.len() >= 3) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = rows.to_string();
    assert!(text.contains("viewer"), "{text}");
    assert!(text.contains("bad user name or password"), "{text}");
    let m = String::from_utf8(http.get("/metrics", &[]).body).unwrap();
    let refused = m
        .lines()
        .find_map(|l| l.strip_prefix("plastic_requests_refused_total "))
        .unwrap();
    assert!(refused.parse::<u64>().unwrap() >= 3, "{m}");

    // A flood of wrong passwords from one address: refused unchecked past the budget.
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(login("vic", "wrong").status);
    }
    assert!(codes.contains(&429), "{codes:?}");
    assert_eq!(
        login("vic", &viewer).status,
        429,
        "even the right one, until the minute ends"
    );
}

#[test]
fn http_beyond_loopback_needs_users_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(plastic()
        .args([
            "hub",
            "--listen",
            "127.0.0.1:0",
            "--http",
            "0.0.0.0:0",
            "--history",
            "off",
        ])
        .env("PLASTIC_HOME", dir.path())
        .env_remove("PLASTIC_BROKER"));
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("refusing to serve HTTP on 0.0.0.0:0"),
        "{out:?}"
    );
}

/// Every path and method of docs/openapi.json is a route (not the NotFound fallback, and not
/// "method not allowed"), and every API route answers with a documented status.
#[test]
fn openapi_matches_the_routes() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_file("docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_hub, _mqtt, port) = hub(&[], dir.path());
    let http = Http { port };
    let csrf = http.get("/api/v1/session", &[]).json()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 10);
    for (path, methods) in paths {
        let concrete = path.replace("{name}", "nobody");
        if path == "/api/v1/stream" {
            // It never ends: read the status line only.
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").unwrap();
            let mut status = String::new();
            BufReader::new(s).read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 200"), "{status}");
            continue;
        }
        for (method, op) in methods.as_object().unwrap() {
            let r = http.call(
                &method.to_uppercase(),
                &concrete,
                &[
                    ("X-CSRF-Token", &csrf),
                    ("Content-Type", "application/json"),
                ],
                b"{}",
            );
            assert_ne!(r.status, 405, "{method} {path} is not routed");
            let documented: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            if r.status == 404 {
                assert_ne!(
                    r.json()["error"]["kind"],
                    "NotFound",
                    "{method} {path} fell through to the NotFound fallback"
                );
            }
            // 400/422 for the empty body we sent, 503 with no history: statuses every route may give.
            let generic = [400, 422, 415, 503];
            assert!(
                documented
                    .iter()
                    .any(|s| s.as_str() == r.status.to_string())
                    || generic.contains(&r.status),
                "{method} {path} answered {} (documented: {documented:?})",
                r.status
            );
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Engine {
    Chromium,
    Firefox,
}

/// A WebDriver session (W3C protocol, spoken directly) on chromedriver or geckodriver.
struct Browser {
    http: Http,
    session: String,
    engine: Engine,
    _driver: Proc,
}

impl Browser {
    fn start(engine: Engine) -> Browser {
        let (candidates, ready): (&[&str], _) = match engine {
            Engine::Chromium => (
                &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
                "started successfully",
            ),
            Engine::Firefox => (
                &["/usr/local/bin/geckodriver", "/usr/bin/geckodriver"],
                "Listening on",
            ),
        };
        let found = candidates
            .iter()
            .map(std::path::PathBuf::from)
            // `cargo install geckodriver` puts it on the PATH (~/.cargo/bin).
            .chain(
                std::env::var_os("PATH")
                    .filter(|_| engine == Engine::Firefox)
                    .map(|path| {
                        std::env::split_paths(&path)
                            .map(|d| d.join("geckodriver"))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )
            .find(|p| p.exists());
        let driver_bin = found.unwrap_or_else(|| {
            panic!("the {engine:?} WebDriver is missing: scripts/setup-test-deps installs it")
        });
        let port = common::free_port();
        let mut cmd = std::process::Command::new(driver_bin);
        cmd.arg(format!("--port={port}"));
        let driver = Proc::spawn(cmd, &format!("{engine:?} WebDriver"));
        driver.wait_contains(ready);
        let http = Http { port };
        let caps = match engine {
            Engine::Chromium => json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
                }
            }}}),
            Engine::Firefox => json!({"capabilities": {"alwaysMatch": {
                "browserName": "firefox",
                "moz:firefoxOptions": {
                    "binary": "/usr/bin/firefox-esr",
                    "args": ["-headless", "--width=1280", "--height=900"]
                }
            }}}),
        };
        let r = http.post("/session", &[], &caps);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let session = r.json()["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            http,
            session,
            engine,
            _driver: driver,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let r = if method == "GET" {
            self.http.get(&path, &[])
        } else {
            self.http.post(&path, &[], &body)
        };
        assert_eq!(
            r.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()["value"].clone()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({"url": url}));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    fn find(&self, css: &str) -> String {
        self.find_using("css selector", css)
    }

    /// The element id of the first match (`using`: a W3C locator strategy).
    fn find_using(&self, using: &str, value: &str) -> String {
        let v = self.cmd("POST", "/element", json!({"using": using, "value": value}));
        v.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Clicks the element `css` finds. The fleet table is redrawn as presence arrives, so an
    /// element found a moment ago can be gone by the click (stale, or not in the layout any
    /// more): it is found again, a bounded number of times.
    fn click(&self, css: &str) {
        for _ in 0..40 {
            let e = self.find(css);
            let path = format!("/session/{}/element/{e}/click", self.session);
            let r = self.http.post(&path, &[], &json!({}));
            if r.status == 200 {
                return;
            }
            let why = String::from_utf8_lossy(&r.body).into_owned();
            assert!(
                why.contains("stale element") || why.contains("not interactable"),
                "click {css}: {why}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{css} never clickable");
    }

    /// Puts a local file in the file input `css`, as a user choosing it would.
    fn choose_file(&self, css: &str, file: &Path) {
        let e = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": file.to_str().unwrap()}),
        );
    }

    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), json!({}));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({"text": text}),
        );
    }

    /// Waits (bounded) until `expr`, a JavaScript expression, is true in the page.
    fn until(&self, expr: &str, why: &str) {
        for _ in 0..600 {
            if self.js(&format!("return !!({expr});")) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let page = self.js("return document.body.innerText;");
        panic!("never: {why}\npage:\n{}", page.as_str().unwrap_or(""));
    }

    fn text_of(&self, id: &str) -> String {
        self.js(&format!(
            "return document.getElementById('{id}').textContent;"
        ))
        .as_str()
        .unwrap()
        .to_owned()
    }

    /// The page's uncaught errors and rejected promises (app.js keeps them in
    /// `plasticPageErrors`), and on Chromium also its console errors, except failed fetches
    /// the test itself provoked (4xx).
    fn script_errors(&self) -> Vec<String> {
        let kept = self.js("return window.plasticPageErrors || ['app.js did not run'];");
        let mut errors: Vec<String> = kept
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap_or("").to_owned())
            .collect();
        if self.engine == Engine::Chromium {
            let logs = self.cmd("POST", "/se/log", json!({"type": "browser"}));
            errors.extend(
                logs.as_array()
                    .unwrap()
                    .iter()
                    .filter(|l| l["level"] == "SEVERE")
                    .map(|l| l["message"].as_str().unwrap_or("").to_owned())
                    .filter(|m| !m.contains("Failed to load resource")),
            );
        }
        errors
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.http.call("DELETE", &path, &[], b"");
    }
}

/// The dashboard in headless Chromium: login, the fleet live (a node appears and goes away),
/// an eval and its result, pin 2 toggled and read back, a file uploaded, a deployed script's
/// log line arriving, and a viewer refused. Saves docs/dashboard.png.
#[test]
fn dashboard_in_chromium() {
    dashboard_in(Engine::Chromium);
}

/// The same walk through in headless Firefox (ESR, through geckodriver).
#[test]
fn dashboard_in_firefox() {
    dashboard_in(Engine::Firefox);
}

fn dashboard_in(engine: Engine) {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    let admin = add_user(&users, "root", "admin", &[]);
    let viewer = add_user(&users, "vic", "viewer", &[]);
    let n1 = add_user(&users, "dash-1", "node", &[]);
    let n2 = add_user(&users, "dash-2", "node", &[]);
    let (_hub, mqtt, port) = hub(&["--users", users.to_str().unwrap()], dir.path());
    let node_url = |name: &str, pw: &str| format!("mqtt://{name}:{pw}@127.0.0.1:{mqtt}");
    let _dash1 = start_node(
        "dash-1",
        &node_url("dash-1", &n1),
        &dir.path().join("d1"),
        &[],
    );
    let b = Browser::start(engine);
    let base = format!("http://127.0.0.1:{port}");
    b.go(&format!("{base}/"));
    b.until(
        "!document.getElementById('login').hidden",
        "the login form shows",
    );
    b.type_in("#login-user", "root");
    b.type_in("#login-password", &admin);
    b.click("#login-form button");
    b.until("!document.getElementById('app').hidden", "logged in");
    let row = |name: &str, state: &str| {
        format!("[...document.querySelectorAll('#nodes tbody tr')].some(r => r.dataset.node === '{name}' && r.children[1].textContent === '{state}')")
    };
    b.until(&row("dash-1", "online"), "dash-1 in the table");
    // Uptime, free memory (from the presence) and last seen.
    let cells = b.js("return [...document.querySelector(\"#nodes tbody tr[data-node='dash-1']\").children].map(c => c.textContent);");
    let cells: Vec<&str> = cells
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(
        cells[5].ends_with(" s") || cells[5].ends_with(" min"),
        "{cells:?}"
    );
    assert!(cells[6].ends_with("B"), "{cells:?}");
    assert_eq!(cells[7], "now", "{cells:?}");

    // A node appears live, then goes away.
    let mut dash2 = start_node(
        "dash-2",
        &node_url("dash-2", &n2),
        &dir.path().join("d2"),
        &[],
    );
    b.until(&row("dash-2", "online"), "dash-2 appears without a reload");
    dash2.terminate();
    b.until(
        &format!("{} || {}", row("dash-2", "offline"), row("dash-2", "lost")),
        "dash-2 leaves",
    );

    // One command on a selection, its results as a table.
    b.type_in("#run-target", "dash-*");
    b.type_in("#run-code", "6*7");
    b.click("#run-eval");
    b.until("document.querySelector('#run-results tbody') && document.querySelector('#run-results tbody').textContent.includes('42')", "the selection's results");

    // The node page: eval, GPIO, upload, a script's log.
    b.click("#nodes tbody tr[data-node='dash-1'] td");
    b.until("!document.getElementById('node').hidden", "the node page");
    b.type_in("#code", "2+3");
    b.click("#eval");
    b.until(
        "document.getElementById('console').textContent.includes('5')",
        "the eval's result",
    );
    b.type_in("#pin", "2");
    b.click("#pin-off");
    b.until(
        "document.getElementById('pin-value').textContent === '[[2,0]]'",
        "pin 2 set to 0",
    );
    b.click("#pin-read");
    b.until("document.getElementById('pin-value').textContent === '[[2,0]]' && document.getElementById('console').textContent.includes('read GPIOs')", "pin 2 read back as 0");
    b.click("#pin-on");
    b.until(
        "document.getElementById('pin-value').textContent === '[[2,1]]'",
        "pin 2 set to 1",
    );
    let local = dir.path().join("notes.txt");
    std::fs::write(&local, "uploaded from the browser\n").unwrap();
    b.choose_file("#upload", &local);
    b.type_in("#upload-path", "docs/notes.txt");
    b.click("#upload-go");
    b.until(
        "document.getElementById('files-status').textContent.startsWith('uploaded')",
        "the upload",
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("d1/docs/notes.txt")).unwrap(),
        "uploaded from the browser\n"
    );
    // Listed, then deleted from the page (after the confirmation).
    b.click("#files-list");
    b.until(
        "document.getElementById('files').textContent.includes('docs/notes.txt')",
        "the file listed",
    );
    let delete = b.find_using(
        "xpath",
        "//table[@id='files']//tr[contains(., 'docs/notes.txt')]//button[text()='Delete']",
    );
    b.cmd("POST", &format!("/element/{delete}/click"), json!({}));
    b.cmd("POST", "/alert/accept", json!({}));
    b.until("!document.getElementById('files').textContent.includes('docs/notes.txt') && document.getElementById('console').textContent.includes('removed')", "the file deleted");
    assert!(!dir.path().join("d1/docs/notes.txt").exists());
    let script = dir.path().join("hello.py");
    std::fs::write(&script, "print('hello from the script')\n").unwrap();
    b.choose_file("#script-file", &script);
    b.click("#script-run");
    b.until(
        "document.getElementById('log').textContent.includes('hello from the script')",
        "the script's log line",
    );
    assert!(b.text_of("console").contains("5"));

    // The screenshot for the README: the fleet page.
    b.click("#back");
    b.until(
        "!document.getElementById('fleet').hidden",
        "back to the fleet",
    );
    let png = b.cmd("GET", "/screenshot", json!({}));
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(png.as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    if engine == Engine::Chromium {
        std::fs::write(common::repo_file("docs/dashboard.png"), png).unwrap();
    }

    let errors = b.script_errors();
    assert!(errors.is_empty(), "script errors: {errors:?}");

    // A viewer sees the fleet and is refused an exec, with the reason.
    b.click("#logout");
    b.until("!document.getElementById('login').hidden", "logged out");
    b.type_in("#login-user", "vic");
    b.type_in("#login-password", &viewer);
    b.click("#login-form button");
    b.until(&row("dash-1", "online"), "the viewer sees the fleet");
    b.click("#nodes tbody tr[data-node='dash-1'] td");
    b.type_in("#code", "open('x','w')");
    b.click("#exec");
    b.until(
        "document.getElementById('console').textContent.includes('viewer')",
        "the refusal",
    );
    assert!(!dir.path().join("d1/x").exists());

    // On a phone-sized window (390 px) neither page is wider than the screen.
    b.cmd("POST", "/window/rect", json!({"width": 390, "height": 844}));
    // (Headless Firefox makes no window narrower than 500 px; both are under the page's
    // 720 px breakpoint.)
    b.until("window.innerWidth <= 500", "the window is phone-sized");
    let fits = "document.documentElement.scrollWidth <= window.innerWidth";
    b.until(fits, "the node page fits a phone's width");
    b.click("#back");
    b.until("!document.getElementById('fleet').hidden", "the fleet page");
    b.until(fits, "the fleet page fits a phone's width");
    let errors = b.script_errors();
    assert!(errors.is_empty(), "script errors: {errors:?}");
}

/// A measurement, not a check (run it by hand: `cargo test --release -p plastic --test web --
/// --ignored --nocapture dashboard_with_10000_nodes`; figures in docs/performance.md): how long
/// the fleet page takes, from navigation to showing 10,000 simulated nodes online.
#[test]
#[ignore]
fn dashboard_with_10000_nodes() {
    let n = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (_hub, mqtt, port) = hub(&[], dir.path());
    // The page only sees presence: 10,000 retained presences (what 10,000 nodes announce)
    // stand in for the nodes themselves, which take minutes to connect on this machine.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut o = rumqttc::MqttOptions::new("bench-presence", "127.0.0.1", mqtt);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (c, mut el) = rumqttc::AsyncClient::new(o, 1024);
        let driver = tokio::spawn(async move {
            let mut acked = 0;
            while acked < n {
                if let Ok(rumqttc::Event::Incoming(rumqttc::Incoming::PubAck(_))) = el.poll().await
                {
                    acked += 1;
                }
            }
        });
        for i in 1..=n {
            let p = json!({"name": format!("big-{i}"), "state": "online", "platform": "sim",
                "version": "0.1.0", "protocol": 1, "address": "127.0.0.1", "groups": ["lab"],
                "since": 1.8e9, "boot": format!("{i:016x}")});
            c.publish(
                format!("plastic/big-{i}/status"),
                rumqttc::QoS::AtLeastOnce,
                true,
                p.to_string(),
            )
            .await
            .unwrap();
        }
        driver.await.unwrap();
    });
    let http = Http { port };
    let online_line = format!("plastic_nodes{{state=\"online\"}} {n}");
    while !String::from_utf8_lossy(&http.get("/metrics", &[]).body).contains(&online_line) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let b = Browser::start(Engine::Chromium);
    let mut figures = Vec::new();
    for _ in 0..3 {
        b.go(&format!("http://127.0.0.1:{port}/"));
        b.until(
            &format!("document.getElementById('summary').textContent === '{n} online of {n}'"),
            "10,000 nodes shown",
        );
        let ms = b.js("return performance.now();").as_f64().unwrap();
        let rows = b.js("return document.querySelectorAll('#nodes tbody tr').length;");
        figures.push(ms);
        println!(
            "fleet page with {n} nodes: shown after {ms:.0} ms ({rows} rows drawn, the rest paged)"
        );
    }
    figures.sort_by(f64::total_cmp);
    println!(
        "fleet page with {n} nodes: best {:.0} ms, median {:.0} ms",
        figures[0], figures[1]
    );
    // Filtering 10,000 rows: from typing to the table redrawn.
    let ms = b.js(
        "const t = performance.now(); const f = document.getElementById('filter'); f.value = 'big-99'; \
         f.dispatchEvent(new Event('input')); return performance.now() - t;",
    );
    println!("filter over {n} nodes: {:.1} ms", ms.as_f64().unwrap());
}

/// `--external`: the web side would act with this hub's broker credentials, so without a users
/// file of its own it stays off, and says why.
#[test]
fn external_hub_needs_users_for_its_web_side() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker_hub, mqtt, _) = hub(&[], dir.path());
    let home = dir.path().join("home");
    let broker = format!("mqtt://127.0.0.1:{mqtt}");
    // The default address: the hub runs, without its web side, and says why.
    let mut cmd = plastic();
    cmd.args(["--broker", &broker, "hub", "--external", "--history", "off"])
        .env("PLASTIC_HOME", &home);
    let hub = Proc::spawn(cmd, "plastic hub --external");
    let line = hub.wait_contains("no dashboard");
    assert!(line.contains("needs a users file"), "{line}");
    assert!(!hub.output_so_far().contains("dashboard and API on"));
    // An address asked for: refused outright.
    let out = run(plastic()
        .args(["--broker", &broker, "hub", "--external", "--history", "off"])
        .args(["--http", "127.0.0.1:0"])
        .env("PLASTIC_HOME", &home));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("needs a users file"), "{out:?}");
}

/// HTTPS with the hub's certificate (`--tls-cert`): a TLS client that trusts only the hub's CA
/// (`plastic certs init`) logs in, the session cookie is `Secure` and works on the next
/// request; a client trusting another CA is refused in the handshake; plain HTTP to the port
/// gets no HTTP answer.
#[test]
fn https_with_the_hubs_certificate() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = run(plastic().args(["certs", "init", "--dir"]).arg(&certs));
    assert_eq!(out.code, 0, "{out:?}");
    let other = dir.path().join("other");
    let out = run(plastic().args(["certs", "init", "--dir"]).arg(&other));
    assert_eq!(out.code, 0, "{out:?}");
    let users = dir.path().join("users.toml");
    let admin = add_user(&users, "root", "admin", &[]);
    let (_hub, _, port) = hub(
        &[
            "--users",
            users.to_str().unwrap(),
            "--tls-cert",
            certs.join("hub.pem").to_str().unwrap(),
            "--tls-key",
            certs.join("hub.key").to_str().unwrap(),
        ],
        dir.path(),
    );
    let config = |ca: &Path| {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    };
    // One HTTPS exchange: the response, or the TLS error.
    let https = |config: Arc<rustls::ClientConfig>, request: String| -> Result<Resp, String> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            // The hub may close without close_notify once the response is out.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(e.to_string()),
        }
        Ok(parse(&raw))
    };
    let body = json!({"user": "root", "password": admin}).to_string();
    let login = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = https(config(&certs.join("ca.pem")), login.clone()).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(set.contains("; Secure"), "{set}");
    assert!(set.contains("HttpOnly"), "{set}");
    let session = https(
        config(&certs.join("ca.pem")),
        format!(
            "GET /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            r.cookie()
        ),
    )
    .unwrap();
    assert_eq!(session.json()["user"], "root", "{session:?}");
    // A client that trusts another CA does not get through the handshake.
    let refused = https(config(&other.join("ca.pem")), login);
    assert!(refused.is_err(), "{refused:?}");
    // Plain HTTP to the HTTPS port: no answer that a client could take for one.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    // The hub may close as soon as it sees the first bytes are no TLS record.
    let _ = s.write_all(
        format!("GET /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes(),
    );
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

/// A node that requires signed requests refuses what comes through the web side (`Unsigned`):
/// the hub holds no node keys, so the API cannot run code there (docs/http-api.md).
#[test]
fn keyed_nodes_refuse_web_requests() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let out = run(plastic()
        .args(["node-key", "new", "keyed-1"])
        .env("PLASTIC_KEYS", &keys));
    assert_eq!(out.code, 0, "{out:?}");
    let (_hub, mqtt, port) = hub(&[], dir.path());
    let root = dir.path().join("k1");
    let _node = start_node(
        "keyed-1",
        &format!("mqtt://127.0.0.1:{mqtt}"),
        &root,
        &["--key-file", keys.join("keyed-1.key").to_str().unwrap()],
    );
    let http = Http { port };
    wait_online(&http, &[], &["keyed-1"]);
    let csrf = http.get("/api/v1/session", &[]).json()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http.post(
        "/api/v1/requests",
        &[("X-CSRF-Token", &csrf)],
        &json!({"target": "keyed-1", "message": {"type": "exec", "to_exec": "open('ran','w').write('x')"}}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let res = &r.json()["results"][0];
    assert_eq!(res["ok"], false, "{res}");
    assert_eq!(res["error"]["kind"], "Unsigned", "{res}");
    assert!(!root.join("ran").exists());
}
