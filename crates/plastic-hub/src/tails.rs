//! The recent log of every node, kept by the hub so that `plastic logs NODE` can show what a
//! script printed (or how it crashed) before anyone was watching.
//!
//! The hub's registry connection subscribes to every node's `log` and `events` topics and
//! feeds each line here; [`Tails`] keeps the last lines of each node within fixed bounds and
//! says which nodes changed, and the registry republishes those nodes' tails, retained, on
//! `<prefix>/<node>/log/recent` (docs/protocol.md, "Recent log"), at most once a second. Being
//! retained messages, the tails work the same on an external broker (`plastic hub
//! --external`). Pure: no I/O, no clock; unit-tested.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::Value;

/// Lines kept per node.
pub const LINES_PER_NODE: usize = 100;
/// Bytes (of JSON) kept per node: older lines go first.
pub const BYTES_PER_NODE: usize = 32 * 1024;
/// Bytes kept for all nodes together; beyond it, the node holding the most loses its oldest
/// lines first (a chatty node cannot push out a quiet node's crash).
pub const BYTES_TOTAL: usize = 64 * 1024 * 1024;
/// A line longer than this is cut (its `text`), so one line never fills a node's tail.
pub const MAX_TEXT: usize = 4 * 1024;

#[derive(Default)]
struct Tail {
    lines: VecDeque<(Value, usize)>,
    bytes: usize,
}

/// Every node's recent lines (see the module documentation).
pub struct Tails {
    nodes: HashMap<String, Tail>,
    total: usize,
    dirty: BTreeSet<String>,
    limit_total: usize,
}

impl Default for Tails {
    fn default() -> Self {
        Self::with_total(BYTES_TOTAL)
    }
}

impl Tails {
    pub fn with_total(limit_total: usize) -> Self {
        Tails {
            nodes: HashMap::new(),
            total: 0,
            dirty: BTreeSet::new(),
            limit_total,
        }
    }

    /// Keeps one log line (a JSON object as nodes publish it) of `node`.
    pub fn push(&mut self, node: &str, mut line: Value) {
        if let Some(text) = line.get_mut("text") {
            if let Some(t) = text.as_str() {
                if t.len() > MAX_TEXT {
                    let mut end = MAX_TEXT;
                    while !t.is_char_boundary(end) {
                        end -= 1;
                    }
                    *text = Value::String(format!("{}... (cut)", &t[..end]));
                }
            }
        }
        let size = line.to_string().len() + 1;
        let tail = self.nodes.entry(node.to_owned()).or_default();
        tail.lines.push_back((line, size));
        tail.bytes += size;
        self.total += size;
        while tail.lines.len() > LINES_PER_NODE || tail.bytes > BYTES_PER_NODE {
            let Some((_, n)) = tail.lines.pop_front() else {
                break;
            };
            tail.bytes -= n;
            self.total -= n;
        }
        self.dirty.insert(node.to_owned());
        while self.total > self.limit_total {
            let Some((biggest, _)) = self.nodes.iter().max_by_key(|(_, t)| t.bytes) else {
                break;
            };
            let biggest = biggest.clone();
            let tail = self.nodes.get_mut(&biggest).expect("just found");
            let Some((_, n)) = tail.lines.pop_front() else {
                break;
            };
            tail.bytes -= n;
            self.total -= n;
            if tail.lines.is_empty() {
                // (no entry is kept for a node with nothing left: the map stays bounded)
                self.nodes.remove(&biggest);
            }
            self.dirty.insert(biggest);
        }
    }

    /// A one-line event of `node` (`events` topics), kept as a log line of source
    /// `event:<sub-topic>`.
    pub fn push_event(&mut self, node: &str, sub: &str, data: Value, time: f64) {
        let source = if sub.is_empty() {
            "event".to_owned()
        } else {
            format!("event:{sub}")
        };
        let line = serde_json::json!({"time": time, "node": node, "source": source,
            "level": "info", "text": data.to_string()});
        self.push(node, line);
    }

    /// Forgets a node (its presence was removed).
    pub fn forget(&mut self, node: &str) {
        if let Some(tail) = self.nodes.remove(node) {
            self.total -= tail.bytes;
            self.dirty.insert(node.to_owned());
        }
    }

    /// The nodes whose tail changed since the last call, each with its tail as the JSON array
    /// to publish (empty for a forgotten node: the retained message is then cleared).
    pub fn take_changed(&mut self) -> Vec<(String, Vec<u8>)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .map(|node| {
                let payload = match self.nodes.get(&node) {
                    Some(tail) => {
                        let lines: Vec<&Value> = tail.lines.iter().map(|(l, _)| l).collect();
                        serde_json::to_vec(&lines).unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                (node, payload)
            })
            .collect()
    }

    /// A node's recent lines and events, oldest first (empty for a node never heard from).
    pub fn tail(&self, node: &str) -> Vec<Value> {
        self.nodes
            .get(node)
            .map(|t| t.lines.iter().map(|(l, _)| l.clone()).collect())
            .unwrap_or_default()
    }

    /// Marks a node's tail to be published again (its last publish failed).
    pub fn retry(&mut self, node: String) {
        self.dirty.insert(node);
    }

    /// Bytes kept in all.
    pub fn total_bytes(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(i: usize, text: &str) -> Value {
        json!({"time": i as f64, "node": "n", "source": "script:main", "level": "info", "text": text})
    }

    #[test]
    fn a_tail_keeps_the_last_lines_and_says_who_changed() {
        let mut t = Tails::default();
        for i in 0..LINES_PER_NODE + 5 {
            t.push("n", line(i, &format!("line {i}")));
        }
        t.push("m", line(0, "other"));
        let changed = t.take_changed();
        assert_eq!(
            changed.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            ["m", "n"]
        );
        let tail: Vec<Value> = serde_json::from_slice(&changed[1].1).unwrap();
        assert_eq!(tail.len(), LINES_PER_NODE);
        assert_eq!(tail[0]["text"], "line 5");
        assert_eq!(
            tail.last().unwrap()["text"],
            format!("line {}", LINES_PER_NODE + 4)
        );
        assert!(t.take_changed().is_empty(), "nothing changed since");
    }

    #[test]
    fn bytes_are_bounded_per_node_per_line_and_in_total() {
        let mut t = Tails::with_total(100 * 1024);
        let big = "x".repeat(10 * MAX_TEXT);
        t.push("n", line(0, &big));
        let tail: Vec<Value> = serde_json::from_slice(&t.take_changed()[0].1).unwrap();
        assert!(tail[0]["text"].as_str().unwrap().ends_with("... (cut)"));
        for i in 0..50 {
            t.push("n", line(i, &"y".repeat(3000)));
        }
        let kept: Vec<Value> = serde_json::from_slice(&t.take_changed()[0].1).unwrap();
        let bytes: usize = kept.iter().map(|l| l.to_string().len() + 1).sum();
        assert!(bytes <= BYTES_PER_NODE && kept.len() < 50, "{bytes}");
        // Over the total: the node holding the most gives up lines, the quiet one keeps its.
        t.push("quiet", line(0, "crashed:\nTraceback"));
        for node in ["a", "b", "c"] {
            for i in 0..20 {
                t.push(node, line(i, &"z".repeat(3000)));
            }
        }
        assert!(t.total_bytes() <= 100 * 1024);
        let all = t.take_changed();
        let quiet = &all.iter().find(|c| c.0 == "quiet").unwrap().1;
        assert!(String::from_utf8_lossy(quiet).contains("crashed"));
    }

    #[test]
    fn events_are_lines_and_a_forgotten_node_is_cleared() {
        let mut t = Tails::default();
        t.push_event("n", "temp", json!({"c": 21}), 5.0);
        let tail: Vec<Value> = serde_json::from_slice(&t.take_changed()[0].1).unwrap();
        assert_eq!(tail[0]["source"], "event:temp");
        assert_eq!(tail[0]["text"], "{\"c\":21}");
        t.forget("n");
        assert_eq!(t.take_changed(), vec![("n".to_owned(), Vec::new())]);
        assert_eq!(t.total_bytes(), 0);
    }
}
