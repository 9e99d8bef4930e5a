//! The hub's web side: the dashboard page, the HTTP API under `/api/v1` (docs/http-api.md),
//! Prometheus metrics at `/metrics`, all served by `plastic hub` (axum).
//!
//! The web side adds no second way into the fleet: a request made over HTTP is checked by the
//! hub's own access rules ([`plastic_hub::policy::Policy::check_request_for`]: the same
//! capabilities and node patterns as an MQTT request from that user) and then sent by the
//! hub's MQTT client, with the same correlation, timeouts and definite outcomes as the CLI's.
//! Who asked is written in the history.
//!
//! One file per concern: `auth.rs` (who is calling: session cookie, CSRF, bearer tokens, Host
//! check), `error.rs` (every refusal as JSON), `nodes.rs`, `requests.rs`, `files.rs`,
//! `history.rs`, `stream.rs` (Server-Sent Events), `stats.rs` (the charts' last hour), `metrics.rs`, `page.rs` (the embedded
//! assets), `tls.rs`.

mod auth;
mod error;
mod files;
mod history;
mod metrics;
mod nodes;
mod page;
mod requests;
mod state;
mod stats;
mod stream;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use plastic_client::Client;
use plastic_hub::observe::Observer;
use plastic_hub::policy::Policy;
use plastic_hub::Activity;

pub use error::ApiError;
pub use state::{LOGIN_FAILURES_PER_MINUTE, SESSIONS_MAX, SESSION_LIFETIME};

/// A request body's largest size (a message is at most 256 KiB; JSON around it).
pub const REQUEST_BODY_MAX: usize = 512 * 1024;
pub use files::TRANSFERS_AT_ONCE;

/// What the web side serves and with whose rights.
pub struct WebOptions {
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate chain and key (PEM): the hub's.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The hub's access rules; `None` (no users file): no login, loopback only.
    pub policy: Option<Arc<Policy>>,
    /// The tokens file (`plastic token new`), re-read when it changes.
    pub tokens: Option<PathBuf>,
    /// The hub's own MQTT client (the registry's): presence, and requests on users' behalf.
    pub client: Client,
    pub observer: Observer,
    /// The history database, if one is kept.
    pub history: Option<PathBuf>,
    /// Log lines and events as the registry sees them.
    pub activity: tokio::sync::broadcast::Sender<Arc<Activity>>,
    /// Every node's recent lines (the registry's, as `plastic logs` reads them).
    pub tails: Arc<std::sync::Mutex<plastic_hub::tails::Tails>>,
}

/// A running web server.
pub struct WebHandle {
    pub addr: SocketAddr,
}

/// Binds and serves in the background until the process ends.
pub async fn serve(opts: WebOptions) -> anyhow::Result<WebHandle> {
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", opts.listen))?;
    let addr = listener.local_addr()?;
    let secure = opts.tls.is_some();
    let state = Arc::new(state::AppState::new(&opts, addr, secure));
    stats::start(state.clone());
    let app = router(state);
    match &opts.tls {
        Some((cert, key)) => {
            let acceptor = tls::acceptor(cert, key)?;
            let listener = tls::TlsListener::new(listener, acceptor);
            tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<tls::Peer>(),
                )
                .await;
            });
        }
        None => {
            let listener = tls::PlainListener(listener);
            tokio::spawn(async move {
                let _ = axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<tls::Peer>(),
                )
                .await;
            });
        }
    }
    Ok(WebHandle { addr })
}

fn router(state: Arc<state::AppState>) -> Router {
    let api = Router::new()
        .route("/session", get(auth::session))
        .route("/login", post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/nodes", get(nodes::list))
        .route("/nodes/{name}", get(nodes::one))
        .route("/nodes/{name}/log", get(nodes::log))
        .route("/requests", post(requests::create))
        .route(
            "/nodes/{name}/files",
            // The body limit is the handler's own (read after the caller's rights).
            get(files::download)
                .put(files::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/history", get(history::query))
        .route("/stream", get(stream::events))
        .route("/stats", get(stats::get))
        .fallback(error::not_found);
    Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics::gather))
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/app.css", get(page::style))
        .fallback(error::not_found)
        .layer(DefaultBodyLimit::max(REQUEST_BODY_MAX))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state)
}
