//! `GET /metrics`: the hub's metrics in Prometheus text format (`plastic_hub::metrics`), with
//! the node gauges and memory brought up to date first.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use plastic_proto::NodeState;

use crate::state::AppState;

pub async fn gather(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let m = &state.observer.metrics;
    let (mut online, mut offline, mut lost) = (0, 0, 0);
    for n in state.client.known_nodes() {
        match n.state {
            NodeState::Online => online += 1,
            NodeState::Offline => offline += 1,
            NodeState::Lost => lost += 1,
        }
    }
    m.nodes.with_label_values(&["online"]).set(online);
    m.nodes.with_label_values(&["offline"]).set(offline);
    m.nodes.with_label_values(&["lost"]).set(lost);
    m.memory.set(plastic_hub::metrics::resident_bytes());
    let free = state.transfers.available_permits();
    m.http_transfers
        .set(crate::files::TRANSFERS_AT_ONCE.saturating_sub(free) as i64);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&m.registry.gather())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
