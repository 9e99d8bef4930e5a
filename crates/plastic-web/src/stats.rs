//! `GET /api/v1/stats`: the last hour of the fleet in 10-second samples, for the dashboard's
//! charts (nodes online, requests per second, mean latency). Sampled from the same counters
//! as `/metrics`, by one task, whether or not anybody looks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use plastic_proto::NodeState;
use serde::Serialize;

use crate::state::AppState;

/// One sample every this long...
pub const INTERVAL: Duration = Duration::from_secs(10);
/// ...and an hour of them.
pub const KEPT: usize = 360;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub online: usize,
    pub requests_per_second: f64,
    /// Mean time from a request to its first reply over the interval (none without replies).
    pub latency_ms: Option<f64>,
}

#[derive(Default)]
pub struct Samples(Mutex<VecDeque<Sample>>);

/// Takes a sample every [`INTERVAL`] until the process ends.
pub fn start(state: Arc<AppState>) {
    tokio::spawn(async move {
        let m = &state.observer.metrics;
        let total = || {
            prometheus::core::Collector::collect(&m.requests)
                .iter()
                .flat_map(|f| f.get_metric())
                .map(|x| x.get_counter().value())
                .sum::<f64>()
        };
        let (mut requests, mut count, mut sum) = (
            total(),
            m.latency.get_sample_count(),
            m.latency.get_sample_sum(),
        );
        let mut tick = tokio::time::interval(INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            let online = state
                .client
                .known_nodes()
                .iter()
                .filter(|p| p.state == NodeState::Online)
                .count();
            let (r, c, s) = (
                total(),
                m.latency.get_sample_count(),
                m.latency.get_sample_sum(),
            );
            let sample = Sample {
                at: plastic_hub::history::unix_now(),
                online,
                requests_per_second: (r - requests).max(0.0) / INTERVAL.as_secs_f64(),
                latency_ms: (c > count).then(|| (s - sum) / (c - count) as f64 * 1000.0),
            };
            (requests, count, sum) = (r, c, s);
            let mut kept = state.samples.0.lock().unwrap();
            if kept.len() >= KEPT {
                kept.pop_front();
            }
            kept.push_back(sample);
        }
    });
}

pub async fn get(State(state): State<Arc<AppState>>) -> Json<serde_json::Value> {
    let samples: Vec<Sample> = state.samples.0.lock().unwrap().iter().copied().collect();
    Json(serde_json::json!({"interval": INTERVAL.as_secs(), "samples": samples}))
}
