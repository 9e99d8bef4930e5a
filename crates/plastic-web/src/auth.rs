//! Who is calling, decided once per HTTP request by [`guard`] before any handler runs:
//!
//! - with a users file: a bearer token (`Authorization: Bearer plt_...`, for scripts) or the
//!   session cookie of a login (`plastic_session`: HttpOnly, SameSite=Strict, Secure over
//!   HTTPS). A change (any method but GET/HEAD, and a file download) made with the cookie must
//!   also carry the session's CSRF token in `X-CSRF-Token`; a token needs none (a browser never
//!   sends one on its own).
//! - without one (loopback only, as the MQTT side): no login, but every change needs the
//!   server's CSRF token (from `GET /api/v1/session`, which other sites' pages cannot read),
//!   and the `Host` header must be a loopback name, so a page whose name was pointed at
//!   127.0.0.1 (DNS rebinding) is refused.

use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use plastic_hub::policy::Listener;
use plastic_hub::users::{Role, HUB_USER};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::state::{AppState, SESSION_LIFETIME};

pub const COOKIE: &str = "plastic_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Session,
    Token,
    /// No users file: everyone on loopback.
    Open,
}

/// The caller of an HTTP request, as [`guard`] found it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The hub user (`local` without a users file).
    pub user: String,
    pub role: Option<Role>,
    pub via: Via,
    pub csrf: Option<String>,
}

impl Caller {
    /// The name the history gives this caller's requests.
    pub fn label(&self) -> String {
        match self.via {
            Via::Open => "local (web)".to_owned(),
            _ => format!("{} (web)", self.user),
        }
    }
}

/// Paths anyone may fetch: the page and its assets (they hold no data), the login, and the
/// metrics (counts only; scrapers seldom log in).
fn public(path: &str) -> bool {
    matches!(
        path,
        "/" | "/app.js" | "/app.css" | "/metrics" | "/api/v1/login"
    )
}

pub async fn guard(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let headers = req.headers();
    if !state.authenticated() && !state.local_hosts.is_empty() {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !state.local_hosts.iter().any(|h| h == host) {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "BadHost",
                format!(
                    "this hub serves loopback only without users; the Host header must be one of {}",
                    state.local_hosts.join(", ")
                ),
            )
            .into_response();
        }
    }
    let path = req.uri().path().to_owned();
    let caller = match identify(&state, headers) {
        Ok(caller) => caller,
        Err(e) if public(&path) => {
            let _ = e;
            return next.run(req).await;
        }
        Err(e) => return e.into_response(),
    };
    // A download is a GET that makes a node read and send a whole file: a page elsewhere
    // (an <img src> at 127.0.0.1) must not be able to start one, so it needs the token too.
    let download = path.starts_with("/api/v1/nodes/")
        && path.ends_with("/files")
        && path.matches('/').count() == 5;
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD) || download;
    if changes && caller.via != Via::Token && path != "/api/v1/login" {
        let sent = headers.get(CSRF_HEADER).and_then(|h| h.to_str().ok());
        let expected = caller.csrf.as_deref().unwrap_or("");
        if sent.is_none_or(|s| !constant_time_eq(s.as_bytes(), expected.as_bytes())) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "CsrfRefused",
                "a change needs the X-CSRF-Token header from GET /api/v1/session",
            )
            .into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(policy) = state.policy.as_ref() else {
        return Ok(Caller {
            user: "local".into(),
            role: None,
            via: Via::Open,
            csrf: Some(state.open_csrf.clone()),
        });
    };
    let unauthorized =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized", message);
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let presented = auth
            .to_str()
            .ok()
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or_else(|| unauthorized("Authorization must be `Bearer TOKEN`"))?;
        let user = state
            .token_user(presented.trim())
            .ok_or_else(|| unauthorized("invalid, expired or revoked token"))?;
        let role = policy
            .user_record(&user)
            .map(|u| u.role)
            .ok_or_else(|| unauthorized("the token's user no longer exists"))?;
        return Ok(Caller {
            user,
            role: Some(role),
            via: Via::Token,
            csrf: None,
        });
    }
    let cookie = cookie_value(headers, COOKIE).ok_or_else(|| {
        unauthorized("log in first (POST /api/v1/login), or send Authorization: Bearer TOKEN")
    })?;
    let session = state
        .session(&cookie)
        .ok_or_else(|| unauthorized("the session has ended; log in again"))?;
    let role = policy
        .user_record(&session.user)
        .map(|u| u.role)
        .ok_or_else(|| unauthorized("the session's user no longer exists"))?;
    Ok(Caller {
        user: session.user,
        role: Some(role),
        via: Via::Session,
        csrf: Some(session.csrf),
    })
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /api/v1/session`: who the caller is, and the CSRF token for changes.
pub async fn session(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Json<serde_json::Value> {
    Json(json!({
        "user": caller.user,
        "role": caller.role.map(|r| r.to_string()),
        "csrf": caller.csrf,
        "authentication": state.authenticated(),
    }))
}

#[derive(Deserialize)]
pub struct Login {
    user: String,
    password: String,
}

/// `POST /api/v1/login {"user", "password"}`: a session cookie for a hub user (not a node
/// user: those are boards). Failed tries are budgeted per address.
pub async fn login(
    State(state): State<Arc<AppState>>,
    ConnectInfo(crate::tls::Peer(peer)): ConnectInfo<crate::tls::Peer>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(login) = body.map_err(ApiError::from)?;
    let Some(policy) = state.policy.clone() else {
        return Err(ApiError::bad_request(
            "this hub has no users file: there is nothing to log in to (the API is open on loopback)",
        ));
    };
    if !state.login_reserve(peer.ip()) {
        state.observer.metrics.logins_refused.inc();
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyLogins",
            "too many failed logins from this address; wait a minute",
        ));
    }
    let user = login.user.clone();
    let slot = tokio::time::timeout(
        crate::state::LOGIN_WAIT,
        state.login_slots.clone().acquire_owned(),
    )
    .await;
    let Ok(Ok(slot)) = slot else {
        // Never checked: the try is given back.
        state.login_succeeded(peer.ip());
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "too many logins at once; try again",
        ));
    };
    let checked = if user == HUB_USER || user.len() > 64 {
        Err(())
    } else {
        tokio::task::spawn_blocking(move || {
            // The slot goes with the check: a caller who hangs up does not free it while
            // argon2 still runs.
            let _slot = slot;
            policy
                .authenticate_on(
                    Listener::Main,
                    Some(&login.user),
                    Some(login.password.as_bytes()),
                    &login.user,
                )
                .map_err(drop)
        })
        .await
        .unwrap_or(Err(()))
    };
    let role = state
        .policy
        .as_ref()
        .and_then(|p| p.user_record(&user))
        .map(|u| u.role);
    match (checked, role) {
        (Ok(_), Some(Role::Node)) => {
            state
                .observer
                .login_refused(&user, "node users do not log in to the web (web)");
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "node users are for boards; log in as an operator, viewer or admin",
            ))
        }
        (Ok(_), Some(role)) => {
            state.login_succeeded(peer.ip());
            let (id, session) = state.new_session(&user);
            let cookie = format!(
                "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
                SESSION_LIFETIME.as_secs(),
                if state.secure { "; Secure" } else { "" }
            );
            let mut response = Json(json!({
                "user": user,
                "role": role.to_string(),
                "csrf": session.csrf,
            }))
            .into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
            );
            Ok(response)
        }
        _ => {
            state
                .observer
                .login_refused(&shown(&user), "bad user name or password (web)");
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "BadCredentials",
                "bad user name or password",
            ))
        }
    }
}

/// A user name as typed, safe to keep in the history (cut, no control characters).
fn shown(user: &str) -> String {
    user.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `POST /api/v1/logout`: ends the session.
pub async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie_value(&headers, COOKIE) {
        state.sessions.lock().unwrap().remove(&id);
    }
    let mut response = Json(json!({"logged_out": true})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("plastic_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}
