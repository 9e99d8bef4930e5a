//! What is plugged into rmqtt's hooks: the policy (authentication and ACL) and the hub's
//! limits (login budget, sessions per user, subscriptions per session, queued bytes).
//!
//! rmqtt calls one handler per hook type; each answers from [`Policy`] or the counters here.
//! Refused requests are dropped by the broker (QoS 1 is still acknowledged, so the sender does
//! not retry) and their error replies go out through the hub's own client, over the channel
//! returned by [`install`]: publishing from inside a hook would re-enter the broker.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::types::{AuthResult, Id, PublishAclResult, Reason, SubscribeAclResult};
use tokio::sync::mpsc;

use crate::gate::Gate;
use crate::hasher::Hasher;
use crate::limits::{HubLimits, LoginBudget};
use crate::policy::{AuthRefusal, Listener, Login, Policy};
use crate::users::HUB_USER;

/// An error reply to publish: (topic, payload).
pub type Refusal = (String, Vec<u8>);

/// Log lines about repeated events, at most one per key every this long.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Counts events and says when to log them: the first at once, then a sum every [`LOG_EVERY`].
struct Quiet<K: std::hash::Hash + Eq>(Mutex<HashMap<K, (u64, Instant)>>);

impl<K: std::hash::Hash + Eq> Default for Quiet<K> {
    fn default() -> Self {
        Quiet(Mutex::default())
    }
}

impl<K: std::hash::Hash + Eq> Quiet<K> {
    /// `Some(n)`: log now, `n` events since the last line.
    fn note(&self, key: K) -> Option<u64> {
        let mut m = self.0.lock().unwrap();
        if m.len() > 10_000 {
            m.clear();
        }
        let now = Instant::now();
        let e = m.entry(key).or_insert((0, now - LOG_EVERY));
        e.0 += 1;
        if now.duration_since(e.1) >= LOG_EVERY {
            let n = e.0;
            *e = (0, now);
            Some(n)
        } else {
            None
        }
    }
}

struct PolicyHandler {
    policy: Arc<Policy>,
    refusals: mpsc::Sender<Refusal>,
    hasher: Hasher,
    budget: Mutex<LoginBudget>,
    limits: HubLimits,
    usage: Arc<Usage>,
    scx: ServerContext,
    over_budget: Quiet<IpAddr>,
    observer: crate::observe::Observer,
}

impl PolicyHandler {
    async fn authenticate(
        &self,
        listener: Listener,
        remote: Option<IpAddr>,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Result<bool, String> {
        let refuse = |r: AuthRefusal| r.describe().to_owned();
        let phc = match self
            .policy
            .login_start(listener, username, password, client_id)
        {
            Login::Done(decision) => return decision.map_err(refuse),
            Login::Verify(phc) => phc,
        };
        // argon2 runs only within the failed-login budget of the address and of the hub; over
        // it the answer is "no" at once, without hashing.
        let ip = remote.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let taken = self.budget.lock().unwrap().take(ip, Instant::now());
        if let Err(over) = taken {
            if let Some(n) = self.over_budget.note(ip) {
                tracing::warn!(
                    remote = %ip,
                    "refused {n} login(s) from {ip} without checking the password: {}",
                    over.describe()
                );
            }
            return Err(format!("over budget: {}", over.describe()));
        }
        let pw = password
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("")
            .to_owned();
        let Some(matched) = self.hasher.verify(pw, phc).await else {
            return Err("too many password checks queued".to_owned());
        };
        if matched {
            self.budget.lock().unwrap().give_back(ip);
        }
        self.policy
            .login_finish(listener, username, password, client_id, matched)
            .map_err(refuse)
    }

    /// Sessions per user: the user's other sessions (connected or parked) still in the broker.
    async fn session_room(&self, username: &str, client_id: &str) -> Result<(), String> {
        if username == HUB_USER {
            return Ok(());
        }
        let known: Vec<String> = {
            let sessions = self.usage.sessions.lock().unwrap();
            match sessions.get(username) {
                Some(ids) if !ids.contains(client_id) => ids.iter().cloned().collect(),
                _ => return Ok(()),
            }
        };
        if known.len() < self.limits.sessions_per_user {
            return Ok(());
        }
        let alive: HashSet<String> = {
            let shared = self.scx.extends.shared().await;
            known.into_iter().filter(|c| shared.exist(c)).collect()
        };
        let n = alive.len();
        self.usage
            .sessions
            .lock()
            .unwrap()
            .insert(username.to_owned(), alive);
        if n >= self.limits.sessions_per_user {
            Err(format!(
                "{username} has {n} sessions (the limit per user is {}; parked persistent sessions count until they expire)",
                self.limits.sessions_per_user
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Handler for PolicyHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(connect) => {
                let username = connect.username().map(|u| u.as_ref());
                let password = connect.password().map(|p| p.as_ref());
                let client_id: &str = connect.client_id().as_ref();
                let listener = if connect.id().lid == crate::broker::BOARD_LISTENER_ID {
                    Listener::Boards
                } else {
                    Listener::Main
                };
                let remote = connect.id().remote_addr;
                let decision = self
                    .authenticate(
                        listener,
                        remote.map(|a| a.ip()),
                        username,
                        password,
                        client_id,
                    )
                    .await;
                // rmqtt publishes a will without the publish check: check it here.
                let will = connect
                    .last_will()
                    .map(|lw| rmqtt::types::Publish::try_from(lw).map(|p| p.topic.to_string()));
                let decision = match (decision, username, will) {
                    (Ok(superuser), Some(user), Some(topic)) => {
                        let topic = topic.unwrap_or_default();
                        self.policy
                            .check_will(user, &topic)
                            .map(|()| superuser)
                            .map_err(|reason| {
                                tracing::warn!(client_id, "{reason}");
                                AuthRefusal::Will.describe().to_owned()
                            })
                    }
                    (decision, _, _) => decision,
                };
                let decision = match (decision, username) {
                    (Ok(superuser), Some(user)) => {
                        self.session_room(user, client_id).await.map(|()| superuser)
                    }
                    (decision, _) => decision,
                };
                let result = match decision {
                    Ok(superuser) => AuthResult::Allow(superuser, None),
                    Err(why) => {
                        let over_budget = why.starts_with("over budget");
                        if over_budget {
                            // Counted, not kept: a flood must not fill the history.
                            self.observer.metrics.logins_refused.inc();
                        } else {
                            self.observer
                                .login_refused(username.unwrap_or("(none)"), &why);
                            tracing::warn!(
                                user = username.unwrap_or("(none)"),
                                client_id,
                                remote = ?remote,
                                "refused a connection: {why}"
                            );
                        }
                        if why == AuthRefusal::BadCredentials.describe() {
                            AuthResult::BadUsernameOrPassword
                        } else {
                            AuthResult::NotAuthorized
                        }
                    }
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let username = session.id.username_ref();
                let filter: &str = subscribe.topic_filter.as_ref();
                // rmqtt hands the filter without its `$share/<group>/`: put it back, so the
                // rules see what the client asked for (pools are shared subscriptions).
                let asked = match subscribe.opts.shared_group() {
                    Some(group) => format!("$share/{group}/{filter}"),
                    None => filter.to_owned(),
                };
                let mut checked = self.policy.check_subscribe(username, &asked);
                if checked.is_ok() && username != HUB_USER {
                    let cap = self.limits.subscriptions_per_session;
                    let have = match session.subscriptions().await {
                        Ok(subs) => {
                            let map = subs.read().await;
                            // Subscribing again to a filter it has adds nothing.
                            if map.contains_key(filter) {
                                0
                            } else {
                                map.len()
                            }
                        }
                        Err(_) => 0,
                    };
                    if have >= cap {
                        checked = Err(format!(
                            "refused a subscription to `{filter}`: {} has {have} subscriptions (the limit per session is {cap})",
                            session.id.client_id
                        ));
                    }
                }
                let result = match checked {
                    Ok(()) => SubscribeAclResult::new_success(subscribe.opts.qos(), None),
                    Err(reason) => {
                        tracing::warn!(client_id = %session.id.client_id, "{reason}");
                        SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized)
                    }
                };
                (false, Some(HookResult::SubscribeAclResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                let username = session.id.username_ref();
                let retained = if publish.retain {
                    self.policy.check_retain(username, &publish.topic)
                } else {
                    Ok(())
                };
                let checked = retained
                    .map_err(|reason| crate::policy::Denial {
                        reason,
                        reply: None,
                    })
                    .and_then(|()| {
                        self.policy
                            .check_publish(username, &publish.topic, &publish.payload)
                    });
                let result = match checked {
                    Ok(()) => PublishAclResult::allow(),
                    Err(denial) => {
                        tracing::warn!(client_id = %session.id.client_id, "{}", denial.reason);
                        self.observer.request_refused(username, &denial.reason);
                        if let Some(reply) = denial.reply {
                            // A full queue means a flood of refusals: dropping some replies
                            // is better than blocking the broker.
                            let _ = self.refusals.try_send(reply);
                        }
                        PublishAclResult::rejected(false, Some(denial.reason.into()))
                    }
                };
                (false, Some(HookResult::PublishAclResult(result)))
            }
            _ => (true, acc),
        }
    }
}

/// What the limits count across hooks.
#[derive(Default)]
struct Usage {
    /// Client ids of each user's sessions (pruned against the broker when at the cap).
    sessions: Mutex<HashMap<String, HashSet<String>>>,
    queued: Mutex<Queued>,
}

/// Bytes queued for offline sessions. A message enters a session's queue through the
/// `OfflineMessage` hook and leaves through `MessageExpiryCheck` (every delivery asks it
/// first) or `MessageDropped`; it is known by its payload buffer, which rmqtt shares and
/// never copies on the way.
#[derive(Default)]
pub(crate) struct Queued {
    sessions: HashMap<String, SessionQueue>,
    total: u64,
    /// Sessions being ended for being over a limit.
    ending: HashSet<String>,
}

#[derive(Default)]
struct SessionQueue {
    bytes: u64,
    items: HashMap<(usize, usize), (u32, u64)>,
}

/// Why a session is over its queue limits.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueOver {
    Session(u64),
    Hub(u64),
}

impl Queued {
    /// Counts a message queued for `client`; says whether that puts it over a limit (it is
    /// then forgotten here and marked as ending).
    pub(crate) fn push(
        &mut self,
        client: &str,
        key: (usize, usize),
        size: u64,
        per_session: u64,
        total: u64,
    ) -> Option<QueueOver> {
        if self.ending.contains(client) {
            return None;
        }
        let q = self.sessions.entry(client.to_owned()).or_default();
        let e = q.items.entry(key).or_insert((0, size));
        e.0 += 1;
        q.bytes += size;
        self.total += size;
        let over = if q.bytes > per_session {
            Some(QueueOver::Session(q.bytes))
        } else if self.total > total {
            Some(QueueOver::Hub(self.total))
        } else {
            None
        };
        if over.is_some() {
            self.forget(client);
            self.ending.insert(client.to_owned());
        }
        over
    }

    /// A message left `client`'s queue (delivered, expired or dropped), if it was counted.
    pub(crate) fn pop(&mut self, client: &str, key: (usize, usize)) {
        let Some(q) = self.sessions.get_mut(client) else {
            return;
        };
        let Some(e) = q.items.get_mut(&key) else {
            return;
        };
        e.0 -= 1;
        let size = e.1;
        if e.0 == 0 {
            q.items.remove(&key);
        }
        q.bytes -= size;
        self.total -= size;
        if q.items.is_empty() {
            self.sessions.remove(client);
        }
    }

    pub(crate) fn forget(&mut self, client: &str) {
        if let Some(q) = self.sessions.remove(client) {
            self.total -= q.bytes;
        }
    }

    pub(crate) fn ended(&mut self, client: &str) {
        self.ending.remove(client);
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> u64 {
        self.total
    }
}

fn key(p: &rmqtt::types::Publish) -> ((usize, usize), u64) {
    let len = p.payload.len();
    (
        (p.payload.as_ptr() as usize, len),
        (len + p.topic.len()) as u64,
    )
}

/// The hooks that need no users file: logins seen (for the gate), sessions per user, queued
/// bytes, and the queue expiry's log line.
struct LimitsHandler {
    limits: HubLimits,
    gate: Arc<Gate>,
    usage: Arc<Usage>,
    scx: ServerContext,
    expired: Quiet<String>,
}

#[async_trait::async_trait]
impl Handler for LimitsHandler {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientConnected(session) => {
                if let Some(peer) = session.id.remote_addr {
                    self.gate.logged_in(peer);
                }
            }
            Parameter::SessionCreated(session) => {
                let user = session.id.username_ref();
                self.usage
                    .sessions
                    .lock()
                    .unwrap()
                    .entry(user.to_owned())
                    .or_default()
                    .insert(session.id.client_id.to_string());
                self.usage
                    .queued
                    .lock()
                    .unwrap()
                    .ended(&session.id.client_id);
            }
            Parameter::SessionTerminated(session, _) => {
                let client = &session.id.client_id;
                self.usage.queued.lock().unwrap().forget(client);
                let user = session.id.username_ref();
                if let Some(ids) = self.usage.sessions.lock().unwrap().get_mut(user) {
                    ids.remove(client.as_ref() as &str);
                }
                crate::broker::trim_soon();
            }
            Parameter::OfflineMessage(session, _, publish) => {
                let (k, size) = key(publish);
                let over = self.usage.queued.lock().unwrap().push(
                    &session.id.client_id,
                    k,
                    size,
                    self.limits.queued_bytes_per_session,
                    self.limits.queued_bytes_total,
                );
                if let Some(over) = over {
                    self.end_session(session.id.clone(), over);
                }
            }
            Parameter::MessageExpiryCheck(session, _, publish) => {
                let (k, _) = key(publish);
                self.usage
                    .queued
                    .lock()
                    .unwrap()
                    .pop(&session.id.client_id, k);
            }
            Parameter::MessageDropped(Some(to), _, publish, reason) => {
                let (k, _) = key(publish);
                self.usage.queued.lock().unwrap().pop(&to.client_id, k);
                if matches!(reason, Reason::MessageExpiration) {
                    if let Some(n) = self.expired.note(to.client_id.to_string()) {
                        tracing::warn!(
                            client_id = %to.client_id,
                            "dropped {n} message(s) queued for {} longer than the queue expiry ({}s; plastic hub --queue-expiry)",
                            to.client_id,
                            self.limits.queue_expiry.as_secs()
                        );
                    }
                }
            }
            _ => {}
        }
        (true, acc)
    }
}

impl LimitsHandler {
    /// Ends a session over its queue limits: its queue is discarded, its client (if
    /// connected) disconnected. From a task: the hook runs inside the session's own loop,
    /// which must be free to take the kick.
    fn end_session(&self, id: Id, over: QueueOver) {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let why = match over {
            QueueOver::Session(b) => format!(
                "{:.1} MiB queued for it (the limit per session is {:.0} MiB)",
                mib(b),
                mib(self.limits.queued_bytes_per_session)
            ),
            QueueOver::Hub(b) => format!(
                "{:.1} MiB queued in the hub (the limit for the hub is {:.0} MiB)",
                mib(b),
                mib(self.limits.queued_bytes_total)
            ),
        };
        tracing::warn!(
            client_id = %id.client_id,
            user = id.username_ref(),
            "ended the session {}: {why}; its queue is discarded",
            id.client_id
        );
        let scx = self.scx.clone();
        let usage = self.usage.clone();
        tokio::spawn(async move {
            let client = id.client_id.to_string();
            let mut entry = scx.extends.shared().await.entry(id);
            let _ = entry.kick(true, true, true).await;
            drop(entry);
            let mut q = usage.queued.lock().unwrap();
            q.forget(&client);
            q.ended(&client);
            drop(q);
            crate::broker::trim_soon();
        });
    }
}

/// Registers the limits' hooks, and the policy's when there is one. Returns where the hub's
/// client must take refusal replies from.
pub(crate) async fn install(
    scx: &ServerContext,
    policy: Option<Arc<Policy>>,
    limits: &HubLimits,
    gate: Arc<Gate>,
    observe: crate::observe::ObserveHandler,
) -> Option<mpsc::Receiver<Refusal>> {
    let register = scx.extends.hook_mgr().register();
    let observer = observe.observer.clone();
    let observe = Arc::new(observe);
    for typ in [
        Type::MessagePublish,
        Type::MessageDelivered,
        Type::ClientConnected,
        Type::ClientDisconnected,
    ] {
        register
            .add(typ, Box::new(Observing(observe.clone())))
            .await;
    }
    let usage = Arc::new(Usage::default());
    for typ in [
        Type::ClientConnected,
        Type::SessionCreated,
        Type::SessionTerminated,
        Type::OfflineMessage,
        Type::MessageExpiryCheck,
        Type::MessageDropped,
    ] {
        register
            .add(
                typ,
                Box::new(LimitsHandler {
                    limits: limits.clone(),
                    gate: gate.clone(),
                    usage: usage.clone(),
                    scx: scx.clone(),
                    expired: Quiet::default(),
                }),
            )
            .await;
    }
    let rx = match policy {
        Some(policy) => {
            let (tx, rx) = mpsc::channel(1024);
            let handler = Arc::new(PolicyHandler {
                policy,
                refusals: tx,
                hasher: Hasher::new(limits.hashing_threads),
                budget: Mutex::new(LoginBudget::new(
                    limits.failed_logins_per_address,
                    limits.failed_logins_total,
                    Instant::now(),
                )),
                limits: limits.clone(),
                usage,
                scx: scx.clone(),
                over_budget: Quiet::default(),
                observer,
            });
            for typ in [
                Type::ClientAuthenticate,
                Type::ClientSubscribeCheckAcl,
                Type::MessagePublishCheckAcl,
            ] {
                register.add(typ, Box::new(Shared(handler.clone()))).await;
            }
            Some(rx)
        }
        None => None,
    };
    register.start().await;
    rx
}

/// The observer, registered for several hook types.
struct Observing(Arc<crate::observe::ObserveHandler>);

#[async_trait::async_trait]
impl Handler for Observing {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        self.0.hook(param, acc).await
    }
}

/// One policy handler registered for several hook types (one hasher, one budget).
struct Shared(Arc<PolicyHandler>);

#[async_trait::async_trait]
impl Handler for Shared {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        self.0.hook(param, acc).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_bytes_per_session_and_in_all() {
        let mut q = Queued::default();
        assert_eq!(q.push("a", (1, 10), 10, 25, 40), None);
        assert_eq!(q.push("a", (1, 10), 10, 25, 40), None);
        q.pop("a", (1, 10));
        assert_eq!(q.total(), 10);
        assert_eq!(q.push("b", (2, 20), 20, 25, 40), None);
        // a: 10 + 20 > 25.
        assert_eq!(
            q.push("a", (3, 20), 20, 25, 40),
            Some(QueueOver::Session(30))
        );
        assert_eq!(q.total(), 20, "an ended session's bytes are forgotten");
        assert_eq!(q.push("a", (4, 1), 1, 25, 40), None, "ending: not counted");
        assert_eq!(q.total(), 20);
        q.ended("a");
        assert_eq!(q.push("c", (5, 15), 15, 25, 40), None);
        assert_eq!(q.push("d", (6, 10), 10, 25, 40), Some(QueueOver::Hub(45)));
        // Unknown messages (queued while the session was online) are ignored.
        q.pop("b", (9, 9));
        q.pop("zz", (1, 1));
        assert_eq!(q.total(), 35);
        q.forget("b");
        q.forget("c");
        assert_eq!(q.total(), 0);
    }
}
