//! The dashboard: one HTML page, one script, one style sheet, embedded in the binary (no build
//! step, no separate install). Served with a Content-Security-Policy that allows only these
//! same-origin files, so a node's name or output that smuggles markup cannot run script.

use axum::http::header;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> impl IntoResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> impl IntoResponse {
    asset(STYLE, "text/css; charset=utf-8")
}
