//! What every handler shares: the hub's client and rules, the logged-in sessions, the tokens
//! file (re-read when it changes, so `plastic token revoke` takes effect at once), and the
//! failed-login budget.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use plastic_client::Client;
use plastic_hub::observe::Observer;
use plastic_hub::policy::Policy;
use plastic_hub::tokens::Tokens;
use plastic_hub::Activity;

use crate::WebOptions;

/// How long a login lasts.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Logged-in sessions kept at most; the oldest goes first.
pub const SESSIONS_MAX: usize = 10_000;
/// Failed logins from one address (an IPv6 /64) per minute before further tries are refused
/// unchecked.
pub const LOGIN_FAILURES_PER_MINUTE: u32 = 10;
/// Password checks running at once; more wait (at most [`LOGIN_WAIT`]).
pub const LOGIN_CHECKS_AT_ONCE: usize = 2;
/// How long a login waits for a password check before it is refused as busy.
pub const LOGIN_WAIT: Duration = Duration::from_secs(10);

pub struct AppState {
    pub client: Client,
    pub policy: Option<Arc<Policy>>,
    pub observer: Observer,
    pub history: Option<PathBuf>,
    pub activity: tokio::sync::broadcast::Sender<Arc<Activity>>,
    pub tails: Arc<Mutex<plastic_hub::tails::Tails>>,
    /// Cookies get `Secure` (HTTPS).
    pub secure: bool,
    /// With no users file: the one CSRF token of the open (loopback) API.
    pub open_csrf: String,
    /// Host headers accepted without a users file (DNS rebinding: a page from elsewhere whose
    /// name now points at 127.0.0.1 would send its own name).
    pub local_hosts: Vec<String>,
    pub sessions: Mutex<HashMap<String, WebSession>>,
    tokens_path: Option<PathBuf>,
    tokens: Mutex<(Option<SystemTime>, Tokens)>,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Password checks at once: argon2 takes 19 MiB and tens of milliseconds each.
    pub login_slots: Arc<tokio::sync::Semaphore>,
    /// File transfers at once ([`crate::files::TRANSFERS_AT_ONCE`]).
    pub transfers: Arc<tokio::sync::Semaphore>,
    pub samples: crate::stats::Samples,
}

#[derive(Debug, Clone)]
pub struct WebSession {
    pub user: String,
    pub csrf: String,
    pub created: Instant,
}

impl AppState {
    pub fn new(opts: &WebOptions, addr: SocketAddr, secure: bool) -> Self {
        let port = addr.port();
        // Beyond loopback without users (only with --insecure) the user chose an open API on
        // a network they trust, reached by names we cannot know: no Host check there.
        let local_hosts = if addr.ip().is_loopback() {
            vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ]
        } else {
            Vec::new()
        };
        AppState {
            client: opts.client.clone(),
            policy: opts.policy.clone(),
            observer: opts.observer.clone(),
            history: opts.history.clone(),
            activity: opts.activity.clone(),
            tails: opts.tails.clone(),
            secure,
            open_csrf: random_token(),
            local_hosts,
            sessions: Mutex::default(),
            tokens_path: opts.tokens.clone(),
            tokens: Mutex::new((None, Tokens::default())),
            failures: Mutex::default(),
            login_slots: Arc::new(tokio::sync::Semaphore::new(LOGIN_CHECKS_AT_ONCE)),
            transfers: Arc::new(tokio::sync::Semaphore::new(crate::files::TRANSFERS_AT_ONCE)),
            samples: Default::default(),
        }
    }

    /// Is there a users file (so every call needs a login or a token)?
    pub fn authenticated(&self) -> bool {
        self.policy.is_some()
    }

    /// The user a bearer token acts as, reading the tokens file again if it changed.
    pub fn token_user(&self, presented: &str) -> Option<String> {
        let path = self.tokens_path.as_ref()?;
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut kept = self.tokens.lock().unwrap();
        if kept.0 != modified || modified.is_none() {
            match Tokens::load_or_default(path) {
                Ok(tokens) => *kept = (modified, tokens),
                Err(e) => {
                    tracing::warn!("{e}; no token is accepted until it is fixed");
                    *kept = (modified, Tokens::default());
                }
            }
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        kept.1.verify(presented, now).ok().map(str::to_owned)
    }

    pub fn new_session(&self, user: &str) -> (String, WebSession) {
        let id = random_token();
        let session = WebSession {
            user: user.to_owned(),
            csrf: random_token(),
            created: Instant::now(),
        };
        keep_session(
            &mut self.sessions.lock().unwrap(),
            id.clone(),
            session.clone(),
            Instant::now(),
        );
        (id, session)
    }

    pub fn session(&self, id: &str) -> Option<WebSession> {
        let sessions = self.sessions.lock().unwrap();
        sessions
            .get(id)
            .filter(|s| s.created.elapsed() < SESSION_LIFETIME)
            .cloned()
    }

    /// Reserves a password try for `ip` (counted before the check, so that tries sent all at
    /// once cannot pass the budget together); false when its budget for the minute is spent.
    /// A successful try gives its count back ([`AppState::login_succeeded`]). IPv6 addresses
    /// count per /64, what one host usually has.
    pub fn login_reserve(&self, ip: IpAddr) -> bool {
        let key = budget_key(ip);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() >= 100_000 {
            failures.retain(|_, (since, _)| since.elapsed() < Duration::from_secs(60));
            if failures.len() >= 100_000 {
                // Bounded whatever the spread of addresses: start over.
                failures.clear();
            }
        }
        let entry = failures.entry(key).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= Duration::from_secs(60) {
            *entry = (Instant::now(), 0);
        }
        if entry.1 >= LOGIN_FAILURES_PER_MINUTE {
            return false;
        }
        entry.1 += 1;
        true
    }

    pub fn login_succeeded(&self, ip: IpAddr) {
        if let Some(entry) = self.failures.lock().unwrap().get_mut(&budget_key(ip)) {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// Adds a session after dropping expired ones; at [`SESSIONS_MAX`] the oldest makes room.
fn keep_session(
    sessions: &mut HashMap<String, WebSession>,
    id: String,
    session: WebSession,
    now: Instant,
) {
    sessions.retain(|_, s| now.saturating_duration_since(s.created) < SESSION_LIFETIME);
    if sessions.len() >= SESSIONS_MAX {
        if let Some(oldest) = sessions
            .iter()
            .min_by_key(|(_, s)| s.created)
            .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
    }
    sessions.insert(id, session);
}

fn budget_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(created: Instant) -> WebSession {
        WebSession {
            user: "u".into(),
            csrf: "c".into(),
            created,
        }
    }

    #[test]
    fn sessions_are_capped_and_the_oldest_goes_first() {
        let base = Instant::now();
        let mut sessions = HashMap::new();
        for i in 0..SESSIONS_MAX {
            let at = base + Duration::from_millis(i as u64);
            keep_session(&mut sessions, format!("s{i}"), session(at), at);
        }
        assert_eq!(sessions.len(), SESSIONS_MAX);
        let now = base + Duration::from_secs(20);
        keep_session(&mut sessions, "new".into(), session(now), now);
        assert_eq!(sessions.len(), SESSIONS_MAX);
        assert!(!sessions.contains_key("s0"), "the oldest made room");
        assert!(sessions.contains_key("s1") && sessions.contains_key("new"));
    }

    #[test]
    fn expired_sessions_are_dropped_first() {
        let base = Instant::now();
        let mut sessions = HashMap::new();
        keep_session(&mut sessions, "old".into(), session(base), base);
        let later = base + SESSION_LIFETIME + Duration::from_secs(1);
        keep_session(&mut sessions, "new".into(), session(later), later);
        assert_eq!(sessions.len(), 1);
        assert!(sessions.contains_key("new"));
    }

    #[test]
    fn login_budgets_count_ipv6_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(budget_key(a), budget_key(b));
        assert_ne!(budget_key(a), budget_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(budget_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }
}
