//! Text a node controls reaches people escaped: presence fields, log lines and names in
//! `plastic ls`, `plastic watch` and the hub's console; results, printed output and errors of
//! requests. A newline must not forge a line, an escape sequence must not reach the terminal
//! (OSC 52 writes the clipboard), bidi controls must not reorder what is shown. `--json`
//! output keeps the exact text.

mod common;

use common::{plastic, BrokerKind, Fleet, Proc};
use serde_json::{json, Value};

const FORGED: &str = "sim\nprod-1 online FAKE";
/// OSC 52: puts "hello" on the clipboard of terminals that allow it.
const CLIPBOARD: &str = "\u{1b}]52;c;aGVsbG8=\u{7}";
const BIDI: &str = "lab\u{202e}1-dorp";
const OVERWRITE: &str = "10.0.0.1\r\u{1b}[2K";

/// No forged line, no raw control character or bidi override, in what a person sees.
fn assert_harmless(what: &str, text: &str) {
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("prod-1 online FAKE")),
        "{what}: a forged line:\n{text}"
    );
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
        .collect();
    assert!(bad.is_empty(), "{what}: raw {bad:?} in:\n{text:?}");
}

#[test]
fn node_text_is_escaped_for_people_and_exact_in_json() {
    let mut fleet = Fleet::new(BrokerKind::Embedded);
    fleet.node("honest-1", &[]);
    let mut cmd = plastic();
    cmd.args(["watch", "--broker", &fleet.broker.url()]);
    let watch = Proc::spawn(cmd, "plastic watch");
    watch.wait_contains("watching");

    // A hostile "node": its presence and a log line, published raw.
    let presence = json!({
        "name": "evil-1", "state": "online", "platform": FORGED, "version": CLIPBOARD,
        "groups": [BIDI], "address": OVERWRITE, "since": 0.0,
    });
    fleet.mosquitto_pub_with(
        "plastic/evil-1/status",
        presence.to_string().as_bytes(),
        &["-r"],
    );
    let log = json!({"time": 0.0, "node": "evil-1", "source": "py", "level": "info",
        "text": format!("ok\nprod-1 online FAKE{CLIPBOARD}")});
    fleet.mosquitto_pub("plastic/evil-1/log", log.to_string().as_bytes());

    // plastic watch: one line per change, escaped.
    let line = watch.wait_contains("evil-1 online");
    assert!(
        line.contains(r"sim\nprod-1 online FAKE \x1b]52;c;aGVsbG8=\x07"),
        "{line}"
    );
    let line = watch.wait_contains("[py]");
    assert!(line.contains(r"ok\nprod-1 online FAKE\x1b]52"), "{line}");
    assert_harmless("plastic watch", &watch.output_so_far());

    // The hub's console.
    let line = fleet.broker.console().wait_contains("node evil-1 online");
    assert!(line.contains(r"groups=lab\u{202e}1-dorp"), "{line}");
    assert_harmless("plastic hub", &fleet.broker.console().output_so_far());

    // plastic ls, and ls --json with the exact text.
    let table = fleet.ok(&["ls"]);
    assert_harmless("plastic ls", &table);
    let row = table.lines().find(|l| l.starts_with("evil-1")).unwrap();
    assert!(row.contains(r"10.0.0.1\r\x1b[2K"), "{row}");
    let exact: Value = fleet
        .ok(&["ls", "--json"])
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|p| p["name"] == "evil-1")
        .unwrap();
    assert_eq!(
        (
            &exact["platform"],
            &exact["version"],
            &exact["groups"][0],
            &exact["address"]
        ),
        (
            &json!(FORGED),
            &json!(CLIPBOARD),
            &json!(BIDI),
            &json!(OVERWRITE)
        )
    );

    // What a node printed keeps its lines and tabs; an escape sequence is shown escaped.
    let out = fleet.cli(&["exec", "honest-1", r"print('a\x1b[31mb\nline2\tx')"]);
    assert_eq!(out.stdout, "a\\x1b[31mb\nline2\tx\n", "{out:?}");
    // A result (a JSON string) and an error message, both of the node's making.
    let out = fleet.cli(&["eval", "honest-1", r"'\u202eabc'"]);
    assert_eq!(out.stdout, "\"\\u{202e}abc\"\n", "{out:?}");
    let out = fleet.cli(&["eval", "honest-1", "--json", r"'\u202eabc'"]);
    let reply: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(reply["result"], "\u{202e}abc");
    let out = fleet.cli(&[
        "exec",
        "honest-1",
        r"raise ValueError('\x1b]52;c;aGk=\x07')",
    ]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(r"ValueError: \x1b]52;c;aGk=\x07"),
        "{out:?}"
    );
    assert_harmless("plastic exec (error)", &out.stderr);
}
