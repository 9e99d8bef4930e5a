//! The hub's HTTP side over real HTTP: a `plastic hub --http 127.0.0.1:0` process, real nodes,
//! requests written by hand on a TCP socket (so that Host, Cookie and CSRF headers are exactly
//! what an attacker would send).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
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
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        parse(&raw)
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
    let r = http.get("/api/v1/nodes/web-1/files?path=data/blob.bin", &[]);
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
    assert_eq!(row["kind"], "outcome");
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
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("may only address"));
    let r = http.post(
        "/api/v1/requests",
        &full,
        &json!({"target": "lab-1", "message": {"type": "exec", "to_exec": "x=1"}}),
    );
    assert_eq!(r.status, 403);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("exec"));

    // A viewer sees the fleet but cannot run anything.
    let r = login("vic", &viewer);
    let vcookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("viewer"));
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
    let acookie = r
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
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
