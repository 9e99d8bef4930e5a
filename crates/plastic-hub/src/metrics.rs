//! What the hub counts, for `/metrics` (Prometheus text format) and the dashboard's charts.
//!
//! Counters are bumped where the event happens (the broker's hooks, the history writer); the
//! web side only gathers. Label values are bounded: a request type is one of the protocol's
//! (anything else is `other`), an outcome is `ok` or `error`, a node state one of three.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the hub exports, registered in one [`Registry`].
pub struct HubMetrics {
    pub registry: Registry,
    /// Requests routed, by `type` (`eval`, `exec`, `command:<name>`... bounded, see [`type_label`]).
    pub requests: IntCounterVec,
    /// Replies routed, by request type and `ok` / `error`.
    pub outcomes: IntCounterVec,
    /// From a request passing the hub to its first reply passing the hub, in seconds.
    pub latency: Histogram,
    pub messages_in: IntCounter,
    pub bytes_in: IntCounter,
    pub messages_out: IntCounter,
    pub bytes_out: IntCounter,
    /// MQTT connections open now (all listeners).
    pub connections: IntGauge,
    pub logins_refused: IntCounter,
    pub requests_refused: IntCounter,
    /// Nodes by presence state, set from the registry.
    pub nodes: IntGaugeVec,
    /// Resident memory of the hub process, set when gathered.
    pub memory: IntGauge,
    /// History records dropped because the writer fell behind (its queue was full).
    pub history_dropped: IntCounter,
    /// File transfers over HTTP running now, set when gathered.
    pub http_transfers: IntGauge,
}

impl Default for HubMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HubMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "plastic_requests_total",
                "Requests routed by the hub, by type",
            ),
            &["type"],
        )
        .expect("valid metric");
        let outcomes = IntCounterVec::new(
            Opts::new(
                "plastic_replies_total",
                "Replies routed by the hub, by request type and outcome (ok, error)",
            ),
            &["type", "outcome"],
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "plastic_request_seconds",
                "Time from a request passing the hub to its first reply passing the hub",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let m = HubMetrics {
            requests,
            outcomes,
            latency,
            messages_in: counter(
                "plastic_messages_in_total",
                "MQTT messages published to the hub",
            ),
            bytes_in: counter(
                "plastic_bytes_in_total",
                "Payload bytes published to the hub",
            ),
            messages_out: counter(
                "plastic_messages_out_total",
                "MQTT messages delivered by the hub",
            ),
            bytes_out: counter(
                "plastic_bytes_out_total",
                "Payload bytes delivered by the hub",
            ),
            connections: IntGauge::new("plastic_connections", "MQTT connections open")
                .expect("valid metric"),
            logins_refused: counter(
                "plastic_logins_refused_total",
                "Refused logins (MQTT and web)",
            ),
            requests_refused: counter(
                "plastic_requests_refused_total",
                "Requests refused by the access rules (MQTT and web)",
            ),
            nodes: IntGaugeVec::new(
                Opts::new("plastic_nodes", "Nodes known to the hub, by state"),
                &["state"],
            )
            .expect("valid metric"),
            memory: IntGauge::new(
                "plastic_hub_resident_bytes",
                "Resident memory of the hub process",
            )
            .expect("valid metric"),
            history_dropped: counter(
                "plastic_history_dropped_total",
                "History records dropped because the writer fell behind",
            ),
            http_transfers: IntGauge::new(
                "plastic_http_transfers",
                "File uploads and downloads over HTTP running now",
            )
            .expect("valid metric"),
            registry,
        };
        let all: [Box<dyn prometheus::core::Collector>; 14] = [
            Box::new(m.requests.clone()),
            Box::new(m.outcomes.clone()),
            Box::new(m.latency.clone()),
            Box::new(m.messages_in.clone()),
            Box::new(m.bytes_in.clone()),
            Box::new(m.messages_out.clone()),
            Box::new(m.bytes_out.clone()),
            Box::new(m.connections.clone()),
            Box::new(m.logins_refused.clone()),
            Box::new(m.requests_refused.clone()),
            Box::new(m.nodes.clone()),
            Box::new(m.memory.clone()),
            Box::new(m.history_dropped.clone()),
            Box::new(m.http_transfers.clone()),
        ];
        for c in all {
            m.registry.register(c).expect("each metric registered once");
        }
        m
    }
}

/// The `type` label of a request: the protocol's type (and a command's name), or `other` for
/// anything a client made up, so that no client can grow the label set.
pub fn type_label(ty: &str, command: Option<&str>) -> String {
    if plastic_proto::command::capability_for(ty, command).is_none() {
        return "other".to_owned();
    }
    match command {
        Some(c) if ty == "command" && plastic_proto::command::COMMAND_NAMES.contains(&c) => {
            format!("command:{c}")
        }
        _ if ty == "command" => "command:other".to_owned(),
        _ => ty.to_owned(),
    }
}

/// The hub's resident memory, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> i64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(type_label("eval", None), "eval");
        assert_eq!(
            type_label("command", Some("blink led")),
            "command:blink led"
        );
        assert_eq!(type_label("command", Some("rm -rf /")), "command:other");
        assert_eq!(type_label("made up", None), "other");
    }

    #[test]
    fn every_metric_is_exported() {
        let m = HubMetrics::new();
        m.requests.with_label_values(&["eval"]).inc();
        m.outcomes.with_label_values(&["eval", "ok"]).inc();
        m.latency.observe(0.001);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&m.registry.gather())
            .unwrap();
        for name in [
            "plastic_requests_total{type=\"eval\"} 1",
            "plastic_replies_total{outcome=\"ok\",type=\"eval\"} 1",
            "plastic_request_seconds_bucket",
            "plastic_connections",
            "plastic_logins_refused_total",
            "plastic_hub_resident_bytes",
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
    }
}
