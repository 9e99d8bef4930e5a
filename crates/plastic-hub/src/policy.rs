//! Who may connect, subscribe and publish what: the hub's access rules as plain functions.
//!
//! No broker types here, so every rule is unit-tested without sockets; `auth.rs` plugs these
//! decisions into rmqtt's hooks. The rules (docs/security.md):
//!
//! - Every user owns the client names `U` and `U.*` and may use their inboxes; a node's
//!   MQTT client id and name are exactly its user name.
//! - Presence (`<prefix>/+/status`) is readable by everyone; logs and events by operators and
//!   viewers, and by a node for itself. Only a node publishes its own status, log and events.
//! - A message to someone else's inbox (or a broadcast) must come from an owned `sender` /
//!   `reply_to`; a `result` only from a node; a request only with the capability its type needs
//!   and to a node the user may address. A refused request is answered by the hub (`Forbidden`).

use std::borrow::Cow;

use crate::head::Head;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use plastic_proto::{ErrorInfo, NodeName, Presence, Reply, Topics};

use crate::users::{owns, Role, User, Users, HUB_USER};

/// A refused publish: why (for the log), and the error reply to send, if the request said
/// where replies go and that place belongs to the sender.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub reason: String,
    pub reply: Option<(String, Vec<u8>)>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No such user, or the wrong password (not told apart, so names cannot be probed).
    BadCredentials,
    /// Right password, but the client id is not one this user may take.
    NotAuthorized,
    /// Right password, but a last will the user may not leave.
    Will,
    /// Right password, but on the board listener, which admits node users only.
    NodesOnly,
}

impl AuthRefusal {
    /// For the hub's log line.
    pub fn describe(self) -> &'static str {
        match self {
            AuthRefusal::BadCredentials => "no such user or wrong password",
            AuthRefusal::NotAuthorized => "client id not owned by the user",
            AuthRefusal::Will => "last will not allowed",
            AuthRefusal::NodesOnly => {
                "only node users may connect on the board listener (operators, viewers and admins use the TLS listener)"
            }
        }
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The main listener (TLS beyond loopback) and the hub's internal one: every role.
    Main,
    /// `--board-listen`: plain TCP for boards that cannot afford TLS, so node users only. A
    /// sniffer there sees node passwords and traffic, but a node user can run nothing on
    /// other nodes unless given `--allow`, and with node keys nothing unsigned runs at all.
    Boards,
}

/// Where a message is published, in the protocol's terms.
enum Dest<'a> {
    Inbox(&'a str),
    All,
    Group(&'a str),
    Pool(&'a str),
}

pub struct Policy {
    topics: Topics,
    users: Users,
    /// The hub's own connection: a random password made at start, never written anywhere.
    hub_password: String,
    /// Groups (and pools, as `pool:NAME`) each node announced in its presence and may join,
    /// for `group:` and `pool:` patterns.
    groups: Mutex<HashMap<String, Vec<String>>>,
    /// Passwords already verified, as HMAC-SHA256 under `cache_key` (never the passwords).
    /// argon2 costs tens of milliseconds by design; without this a fleet reconnecting after a
    /// hub restart would queue for seconds of hashing.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// (user, password) pairs already found wrong, as HMACs: a flood repeating one wrong
    /// secret costs one argon2 run, then nothing.
    rejected: Mutex<HashSet<[u8; 32]>>,
    cache_key: [u8; 32],
    /// Verified against for unknown users, so they cost what known ones do: a PHC string with
    /// the default parameters, a random salt and a random output (no password matches it).
    dummy_hash: String,
}

/// How many wrong (user, password) pairs are remembered before the set starts over.
const REJECTED_PAIRS_KEPT: usize = 4096;

/// What a CONNECT needs after [`Policy::login_start`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// Decided without hashing.
    Done(Result<bool, AuthRefusal>),
    /// Verify the password against this argon2 PHC string, then call
    /// [`Policy::login_finish`].
    Verify(String),
}

impl Policy {
    pub fn new(topics: Topics, users: Users, hub_password: String) -> Self {
        Policy {
            topics,
            users,
            hub_password,
            groups: Mutex::default(),
            verified: Mutex::default(),
            rejected: Mutex::default(),
            cache_key: rand::random(),
            dummy_hash: crate::users::dummy_hash(),
        }
    }

    /// Checks a CONNECT on a listener, hashing when it must: [`Policy::login_start`], then
    /// argon2, then [`Policy::login_finish`]. On the board listener only node users pass
    /// (checked after the password, so the answer says nothing about which names exist).
    pub fn authenticate_on(
        &self,
        listener: Listener,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Result<bool, AuthRefusal> {
        match self.login_start(listener, username, password, client_id) {
            Login::Done(decision) => decision,
            Login::Verify(phc) => {
                let pw = password
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .unwrap_or("");
                let matched = crate::users::verify_password(pw, &phc);
                self.login_finish(listener, username, password, client_id, matched)
            }
        }
    }

    /// Checks a CONNECT on the main listener. `Ok(true)` means a superuser (admin or the hub
    /// itself), whose subscriptions and publishes are not checked further.
    pub fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Result<bool, AuthRefusal> {
        self.authenticate_on(Listener::Main, username, password, client_id)
    }

    /// Everything about a CONNECT that needs no password hashing: missing credentials, the
    /// hub's own login, a password already verified for this user, and a (user, password)
    /// pair already found wrong are decided here. Otherwise the caller verifies the password
    /// against the returned hash (the dummy one for unknown users, so both cost the same) and
    /// calls [`Policy::login_finish`].
    pub fn login_start(
        &self,
        listener: Listener,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
    ) -> Login {
        let (Some(username), Some(password)) = (username, password) else {
            return Login::Done(Err(AuthRefusal::BadCredentials));
        };
        let Ok(password) = std::str::from_utf8(password) else {
            return Login::Done(Err(AuthRefusal::BadCredentials));
        };
        if username == HUB_USER {
            let same = constant_time_eq(password.as_bytes(), self.hub_password.as_bytes());
            return Login::Done(if !(same && owns(HUB_USER, client_id)) {
                Err(AuthRefusal::BadCredentials)
            } else if listener == Listener::Boards {
                Err(AuthRefusal::NodesOnly)
            } else {
                Ok(true)
            });
        }
        if self
            .rejected
            .lock()
            .unwrap()
            .contains(&self.pair_tag(username, password))
        {
            return Login::Done(Err(AuthRefusal::BadCredentials));
        }
        let Some(user) = self.users.get(username) else {
            return Login::Verify(self.dummy_hash.clone());
        };
        let tag = self.tag(password);
        let known = self
            .verified
            .lock()
            .unwrap()
            .get(username)
            .is_some_and(|t| constant_time_eq(t, &tag));
        if known {
            Login::Done(self.admit(listener, username, user, client_id))
        } else {
            Login::Verify(user.password.clone())
        }
    }

    /// Ends a [`Login::Verify`]: `matched` is whether the password matched the hash.
    pub fn login_finish(
        &self,
        listener: Listener,
        username: Option<&str>,
        password: Option<&[u8]>,
        client_id: &str,
        matched: bool,
    ) -> Result<bool, AuthRefusal> {
        let (Some(username), Some(Ok(password))) = (username, password.map(std::str::from_utf8))
        else {
            return Err(AuthRefusal::BadCredentials);
        };
        let user = match self.users.get(username) {
            Some(user) if matched => user,
            _ => {
                let mut rejected = self.rejected.lock().unwrap();
                // Bounded: an attacker trying many passwords must not grow the hub.
                if rejected.len() >= REJECTED_PAIRS_KEPT {
                    rejected.clear();
                }
                rejected.insert(self.pair_tag(username, password));
                return Err(AuthRefusal::BadCredentials);
            }
        };
        self.verified
            .lock()
            .unwrap()
            .insert(username.to_owned(), self.tag(password));
        self.admit(listener, username, user, client_id)
    }

    /// The checks after a right password: the client id, and the board listener.
    fn admit(
        &self,
        listener: Listener,
        username: &str,
        user: &User,
        client_id: &str,
    ) -> Result<bool, AuthRefusal> {
        let id_ok = match user.role {
            Role::Node => client_id == username,
            _ => owns(username, client_id),
        };
        if !id_ok {
            return Err(AuthRefusal::NotAuthorized);
        }
        if listener == Listener::Boards && user.role != Role::Node {
            return Err(AuthRefusal::NodesOnly);
        }
        Ok(user.role == Role::Admin)
    }

    /// A last will is a publish the broker makes later on the client's behalf, and rmqtt does
    /// not run the publish check on it: so it is checked at CONNECT. Only a node may leave one,
    /// and only its own presence (`lost`); admins may leave any.
    pub fn check_will(&self, username: &str, topic: &str) -> Result<(), String> {
        let user = self.user(username)?;
        let own_status = self
            .levels(topic)
            .is_some_and(|l| l.as_slice() == [username, "status"]);
        match user.role {
            Role::Admin => Ok(()),
            Role::Node if own_status => Ok(()),
            role => Err(format!(
                "{username} ({role}) may not leave a last will on `{topic}`; only a node's own status"
            )),
        }
    }

    /// Retained messages come back on every subscribe: a retained request would run again on
    /// every reconnect of its node. Only presence (a node's own status) is retained.
    pub fn check_retain(&self, username: &str, topic: &str) -> Result<(), String> {
        let user = self.user(username)?;
        let own_status = self
            .levels(topic)
            .is_some_and(|l| l.as_slice() == [username, "status"]);
        match user.role {
            Role::Admin => Ok(()),
            Role::Node if own_status => Ok(()),
            role => Err(format!(
                "{username} ({role}) may not publish a retained message to `{topic}`; only a node's own status is retained"
            )),
        }
    }

    fn tag(&self, password: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.cache_key)
            .expect("HMAC takes any key length");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Names a (user, password) pair without keeping the password: user names cannot hold a
    /// NUL, so the encoding is unambiguous.
    fn pair_tag(&self, username: &str, password: &str) -> [u8; 32] {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.cache_key)
            .expect("HMAC takes any key length");
        mac.update(username.as_bytes());
        mac.update(&[0]);
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The user's record, for the hub's limits.
    pub fn user_record(&self, username: &str) -> Option<&User> {
        self.users.get(username)
    }

    fn user(&self, username: &str) -> Result<&User, String> {
        self.users
            .get(username)
            .ok_or_else(|| format!("unknown user `{username}`"))
    }

    /// Splits a topic or filter into its levels under the prefix.
    fn levels<'t>(&self, topic: &'t str) -> Option<Vec<&'t str>> {
        let rest = topic
            .strip_prefix(self.topics.prefix())?
            .strip_prefix('/')?;
        Some(rest.split('/').collect())
    }

    pub fn check_subscribe(&self, username: &str, filter: &str) -> Result<(), String> {
        let user = self.user(username)?;
        let deny = || {
            Err(format!(
                "{username} ({}) may not subscribe to `{filter}`",
                user.role
            ))
        };
        let is_node = user.role == Role::Node;
        // A pool's members subscribe to its inbox as a shared subscription, and nobody else
        // subscribes to it at all (a plain subscriber would get every task besides the member
        // that takes it).
        if let Some(shared) = filter.strip_prefix(plastic_proto::POOL_SHARE) {
            return match self.levels(shared).as_deref() {
                Some(["pool", p, "in"])
                    if is_node && !p.contains(['+', '#']) && user.pools.contains(*p) =>
                {
                    Ok(())
                }
                _ => deny(),
            };
        }
        let Some(levels) = self.levels(filter) else {
            return deny();
        };
        // A wildcard is never a name anyone owns.
        let own = |x: &str| {
            !x.contains(['+', '#'])
                && if is_node {
                    x == username
                } else {
                    owns(username, x)
                }
        };
        let reads_others = matches!(user.role, Role::Operator | Role::Viewer);
        let ok = match levels.as_slice() {
            ["all", "in"] => is_node,
            // A node joins only the groups its user lists (`user add --groups`).
            ["group", g, "in"] => is_node && !g.contains(['+', '#']) && user.groups.contains(*g),
            [x, "in"] => own(x),
            [x, "status"] => *x == "+" || !x.contains('#'),
            [x, "log"] | [x, "log", "recent"] | [x, "events", ..] => {
                let tail_ok = !levels[2..].iter().any(|l| l.contains('#') && *l != "#");
                tail_ok && (own(x) || (reads_others && (*x == "+" || !x.contains(['+', '#']))))
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            deny()
        }
    }

    pub fn check_publish(&self, username: &str, topic: &str, payload: &[u8]) -> Result<(), Denial> {
        self.check_message(username, topic, payload, true)
    }

    /// The checks of [`Policy::check_publish`] for a request the hub sends on `username`'s
    /// behalf (the web API): the same capabilities and node patterns, but the envelope's
    /// `sender` is the hub's own client, so it is not held against the user.
    pub fn check_request_for(
        &self,
        username: &str,
        topic: &str,
        payload: &[u8],
    ) -> Result<(), Denial> {
        if self
            .user_record(username)
            .is_some_and(|u| u.role == Role::Node)
        {
            return Err(Denial {
                reason: format!("{username} is a node user; node users do not use the web API"),
                reply: None,
            });
        }
        self.check_message(username, topic, payload, false)
    }

    /// May `username` reach `node` (its node patterns, with the groups the node announced)?
    /// Admins reach every node.
    pub fn reaches(&self, username: &str, node: &str) -> bool {
        let Some(user) = self.user_record(username) else {
            return false;
        };
        if user.role == Role::Admin || user.reaches_everyone() {
            return true;
        }
        let groups = self.groups.lock().unwrap();
        let node_groups = groups.get(node).map(Vec::as_slice).unwrap_or(&[]);
        user.nodes.iter().any(|p| p.matches(node, node_groups))
    }

    fn check_message(
        &self,
        username: &str,
        topic: &str,
        payload: &[u8],
        own_envelope: bool,
    ) -> Result<(), Denial> {
        let quiet = |reason: String| Denial {
            reason,
            reply: None,
        };
        let user = self.user(username).map_err(quiet)?;
        let may_not = || {
            quiet(format!(
                "{username} ({}) may not publish to `{topic}`",
                user.role
            ))
        };
        let levels = self.levels(topic).ok_or_else(may_not)?;
        let is_node = user.role == Role::Node;
        let dest = match levels.as_slice() {
            ["all", "in"] => Dest::All,
            ["group", g, "in"] => Dest::Group(g),
            ["pool", p, "in"] => Dest::Pool(p),
            [x, "in"] if owns(username, x) => return Ok(()),
            // Only a valid node name is matched against patterns (bounded length, no wildcards).
            [x, "in"] if NodeName::parse(x).is_ok() => Dest::Inbox(x),
            [x, "status"] if is_node && *x == username => {
                if let Some(p) = Presence::parse(payload) {
                    // Only the groups the node may join count for `group:` patterns: a node
                    // cannot claim a group to come within an operator's reach.
                    let mut groups: Vec<String> = p
                        .groups
                        .into_iter()
                        .filter(|g| user.groups.contains(g))
                        .collect();
                    // Pools likewise, as `pool:NAME` (see `NodePattern::matches`).
                    groups.extend(
                        p.pools
                            .into_iter()
                            .filter(|x| user.pools.contains(x))
                            .map(|x| format!("pool:{x}")),
                    );
                    self.groups
                        .lock()
                        .unwrap()
                        .insert(username.to_owned(), groups);
                }
                return Ok(());
            }
            [x, "log"] | [x, "events", ..] if is_node && *x == username => return Ok(()),
            _ => return Err(may_not()),
        };
        let head: Head = serde_json::from_slice(payload).map_err(|e| {
            quiet(format!(
                "refused a message from {username} to `{topic}`: not a plastic message ({e})"
            ))
        })?;
        let owned = |f: &Option<Cow<str>>| f.as_deref().is_none_or(|n| owns(username, n));
        if own_envelope && (!owned(&head.sender) || !owned(&head.reply_to)) {
            return Err(quiet(format!(
                "refused a message from {username} to `{topic}`: sender and reply_to must be {username} or {username}.*"
            )));
        }
        let ty = head.kind().unwrap_or("");
        // Replies and a pool member's `taken` notice are what nodes send back.
        if ty == "result" || ty == "taken" {
            return if is_node {
                Ok(())
            } else {
                Err(quiet(format!(
                    "{username} ({}) may not send replies; only nodes do",
                    user.role
                )))
            };
        }
        let refuse = |why: String| {
            let reason = format!("refused a request from {username} to `{topic}`: {why}");
            Denial {
                reply: self.refusal_reply(&head, &reason),
                reason,
            }
        };
        if user.role == Role::Viewer {
            return Err(refuse(format!(
                "{username} is a viewer, and viewers send no requests"
            )));
        }
        let needed = plastic_proto::command::capability_for(ty, head.command.as_deref())
            .ok_or_else(|| refuse(format!("unknown message type `{ty}`")))?;
        if user.role != Role::Admin && !user.allow.contains(&needed) {
            let allowed: Vec<&str> = user.allow.iter().map(|c| c.as_str()).collect();
            let allowed = if allowed.is_empty() {
                "nothing".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(refuse(format!(
                "{username} may not {} (`{ty}` needs the `{}` capability; {username} is allowed: {allowed})",
                needed.as_str(), needed.as_str()
            )));
        }
        if user.role != Role::Admin && !user.reaches_everyone() {
            let limits = || {
                if user.nodes.is_empty() {
                    return "no node (a node user reaches only the nodes in its `--nodes`)"
                        .to_owned();
                }
                user.nodes
                    .iter()
                    .map(|p| String::from(p.clone()))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let ok = match dest {
                Dest::All => false,
                Dest::Group(g) => user
                    .nodes
                    .iter()
                    .any(|p| matches!(p, crate::users::NodePattern::Group(x) if x == g)),
                Dest::Pool(pool) => user
                    .nodes
                    .iter()
                    .any(|p| matches!(p, crate::users::NodePattern::Pool(x) if x == pool)),
                Dest::Inbox(node) => {
                    let groups = self.groups.lock().unwrap();
                    let node_groups = groups.get(node).map(Vec::as_slice).unwrap_or(&[]);
                    user.nodes.iter().any(|p| p.matches(node, node_groups))
                }
            };
            if !ok {
                let target = match dest {
                    Dest::All => "every node (all)".to_owned(),
                    Dest::Group(g) => format!("group:{g}"),
                    Dest::Pool(p) => format!("pool:{p}"),
                    Dest::Inbox(node) => node.to_owned(),
                };
                return Err(refuse(format!(
                    "{username} may only address {}; not {target}",
                    limits()
                )));
            }
        }
        Ok(())
    }

    /// The hub's error reply to a refused request, if it has an id and a reply target that
    /// belongs to the sender (the hub never sends refusals anywhere else).
    fn refusal_reply(&self, head: &Head, reason: &str) -> Option<(String, Vec<u8>)> {
        let id = head.message_id.as_deref()?;
        let target = head.reply_to.as_deref().or(head.sender.as_deref())?;
        let target = NodeName::parse(target).ok()?;
        let mut reply = Reply::err(id, ErrorInfo::new("Forbidden", reason));
        reply.sender = Some(HUB_USER.to_owned());
        reply.receiver = Some(target.to_string());
        reply.message_id = Some(plastic_proto::new_message_id());
        reply.time_stamp = Some(plastic_proto::unix_seconds(std::time::SystemTime::now()));
        Some((self.topics.inbox(&target), reply.to_bytes()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{hash_password, NodePattern};

    fn policy() -> Policy {
        let mut users = Users::default();
        let hash = hash_password("pw").unwrap();
        let mk = |role, allow: &[&str], nodes: &[&str]| User {
            role,
            password: hash.clone(),
            allow: allow.iter().map(|c| c.parse().unwrap()).collect(),
            nodes: nodes
                .iter()
                .map(|n| NodePattern::try_from(n.to_string()).unwrap())
                .collect(),
            groups: if role == Role::Node {
                ["lab".to_owned()].into()
            } else {
                Default::default()
            },
            pools: if role == Role::Node {
                ["workers".to_owned()].into()
            } else {
                Default::default()
            },
        };
        users
            .add(
                "alice",
                mk(
                    Role::Operator,
                    &["eval", "gpio.read"],
                    &["lab-*", "group:lab"],
                ),
            )
            .unwrap();
        users
            .add("ops", mk(Role::Operator, &["eval", "exec"], &[]))
            .unwrap();
        users
            .add("bob", mk(Role::Operator, &["eval"], &["pool:workers"]))
            .unwrap();
        users.add("viewer1", mk(Role::Viewer, &[], &[])).unwrap();
        users.add("root", mk(Role::Admin, &[], &[])).unwrap();
        users.add("esp-1", mk(Role::Node, &[], &[])).unwrap();
        users
            .add("lab-1", mk(Role::Node, &["eval"], &["lab-*"]))
            .unwrap();
        // An old-style node user: `allow` without `nodes`.
        users
            .add("relay-1", mk(Role::Node, &["eval"], &[]))
            .unwrap();
        users
            .add("hop-1", mk(Role::Node, &["eval"], &["*"]))
            .unwrap();
        Policy::new(Topics::default(), users, "hubsecret".into())
    }

    fn request(ty: &str, sender: &str) -> Vec<u8> {
        format!(r#"{{"type":"{ty}","to_evaluate":"1","message_id":"m1","sender":"{sender}","need_result":true}}"#).into_bytes()
    }

    #[test]
    fn the_board_listener_admits_node_users_only() {
        let p = policy();
        let on = |user: &str, pw: &[u8], id: &str| {
            p.authenticate_on(Listener::Boards, Some(user), Some(pw), id)
        };
        assert_eq!(on("esp-1", b"pw", "esp-1"), Ok(false));
        assert_eq!(on("alice", b"pw", "alice.1"), Err(AuthRefusal::NodesOnly));
        assert_eq!(on("root", b"pw", "root"), Err(AuthRefusal::NodesOnly));
        assert_eq!(on("hub", b"hubsecret", "hub"), Err(AuthRefusal::NodesOnly));
        assert_eq!(
            on("esp-1", b"nope", "esp-1"),
            Err(AuthRefusal::BadCredentials)
        );
        assert_eq!(
            p.authenticate_on(Listener::Main, Some("alice"), Some(b"pw"), "alice.1"),
            Ok(false)
        );
    }

    #[test]
    fn connections_need_the_right_password_and_an_owned_client_id() {
        let p = policy();
        assert_eq!(
            p.authenticate(Some("alice"), Some(b"pw"), "alice.1234"),
            Ok(false)
        );
        assert_eq!(p.authenticate(Some("root"), Some(b"pw"), "root"), Ok(true));
        assert_eq!(
            p.authenticate(Some("alice"), Some(b"nope"), "alice"),
            Err(AuthRefusal::BadCredentials)
        );
        assert_eq!(
            p.authenticate(Some("mallory"), Some(b"pw"), "mallory"),
            Err(AuthRefusal::BadCredentials)
        );
        assert_eq!(
            p.authenticate(None, None, "x"),
            Err(AuthRefusal::BadCredentials)
        );
        assert_eq!(
            p.authenticate(Some("alice"), Some(b"pw"), "esp-1"),
            Err(AuthRefusal::NotAuthorized)
        );
        assert_eq!(
            p.authenticate(Some("esp-1"), Some(b"pw"), "esp-1.x"),
            Err(AuthRefusal::NotAuthorized)
        );
        assert_eq!(
            p.authenticate(Some("hub"), Some(b"hubsecret"), "hub.77"),
            Ok(true)
        );
        assert_eq!(
            p.authenticate(Some("hub"), Some(b"pw"), "hub"),
            Err(AuthRefusal::BadCredentials)
        );
    }

    #[test]
    fn node_users_reach_no_node_by_default_and_join_only_their_groups() {
        let p = policy();
        // `--allow eval` without `--nodes`: nobody (it used to mean every node).
        let d = p
            .check_publish("relay-1", "plastic/prod-1/in", &request("eval", "relay-1"))
            .unwrap_err();
        assert!(d.reason.contains("no node"), "{}", d.reason);
        assert!(p
            .check_publish("relay-1", "plastic/all/in", &request("eval", "relay-1"))
            .is_err());
        assert!(p
            .check_publish(
                "relay-1",
                "plastic/group/lab/in",
                &request("eval", "relay-1")
            )
            .is_err());
        // `--nodes '*'` is every node, explicitly.
        assert!(p
            .check_publish("hop-1", "plastic/prod-1/in", &request("eval", "hop-1"))
            .is_ok());
        // Operators without --nodes still reach every node.
        assert!(p
            .check_publish("ops", "plastic/prod-1/in", &request("eval", "ops.a"))
            .is_ok());
        // Groups: only those of the node's user.
        assert!(p.check_subscribe("esp-1", "plastic/group/lab/in").is_ok());
        let err = p
            .check_subscribe("esp-1", "plastic/group/prod/in")
            .unwrap_err();
        assert!(err.contains("may not subscribe"), "{err}");
        assert!(p.check_subscribe("esp-1", "plastic/group/+/in").is_err());
        // A presence claiming another group does not bring the node within `group:prod`.
        let presence = br#"{"name":"esp-1","state":"online","platform":"sim","version":"0","protocol":1,"address":"","groups":["lab","prod"],"since":1}"#;
        p.check_publish("esp-1", "plastic/esp-1/status", presence)
            .unwrap();
        assert_eq!(
            p.groups.lock().unwrap().get("esp-1").unwrap(),
            &vec!["lab".to_owned()]
        );
    }

    #[test]
    fn repeated_logins_are_decided_without_hashing() {
        let p = policy();
        let start = |pw: &[u8]| p.login_start(Listener::Main, Some("alice"), Some(pw), "alice.1");
        assert!(matches!(start(b"pw"), Login::Verify(_)));
        assert_eq!(
            p.login_finish(Listener::Main, Some("alice"), Some(b"pw"), "alice.1", true),
            Ok(false)
        );
        assert_eq!(start(b"pw"), Login::Done(Ok(false)));
        assert!(matches!(start(b"wrong"), Login::Verify(_)));
        assert_eq!(
            p.login_finish(
                Listener::Main,
                Some("alice"),
                Some(b"wrong"),
                "alice.1",
                false
            ),
            Err(AuthRefusal::BadCredentials)
        );
        assert_eq!(
            start(b"wrong"),
            Login::Done(Err(AuthRefusal::BadCredentials))
        );
        // Unknown users verify against the dummy hash, and their repeats are cheap too.
        let unknown = || p.login_start(Listener::Main, Some("mallory"), Some(b"x"), "mallory");
        assert!(matches!(unknown(), Login::Verify(h) if h == p.dummy_hash));
        p.login_finish(Listener::Main, Some("mallory"), Some(b"x"), "mallory", true)
            .unwrap_err();
        assert_eq!(unknown(), Login::Done(Err(AuthRefusal::BadCredentials)));
    }

    /// docs/security.md ("Limits"): 4,096 wrong pairs are remembered (a repeat is refused
    /// without argon2), then the set starts over.
    #[test]
    fn wrong_pairs_are_remembered_up_to_4096_then_the_set_starts_over() {
        let p = policy();
        let wrong = |i: usize| format!("wrong-{i}");
        let start = |pw: &str| {
            p.login_start(
                Listener::Main,
                Some("alice"),
                Some(pw.as_bytes()),
                "alice.1",
            )
        };
        let fail = |pw: &str| {
            p.login_finish(
                Listener::Main,
                Some("alice"),
                Some(pw.as_bytes()),
                "alice.1",
                false,
            )
        };
        assert_eq!(REJECTED_PAIRS_KEPT, 4096);
        for i in 0..REJECTED_PAIRS_KEPT {
            assert_eq!(fail(&wrong(i)), Err(AuthRefusal::BadCredentials));
        }
        // All 4,096 are decided without hashing, the first as well as the last.
        let refused = Login::Done(Err(AuthRefusal::BadCredentials));
        assert_eq!(start(&wrong(0)), refused);
        assert_eq!(start(&wrong(REJECTED_PAIRS_KEPT - 1)), refused);
        // The 4,097th starts the set over: only it is remembered now.
        fail(&wrong(REJECTED_PAIRS_KEPT)).unwrap_err();
        assert_eq!(start(&wrong(REJECTED_PAIRS_KEPT)), refused);
        assert!(matches!(start(&wrong(0)), Login::Verify(_)));
        assert!(matches!(
            start(&wrong(REJECTED_PAIRS_KEPT - 1)),
            Login::Verify(_)
        ));
    }

    /// docs/security.md ("Roles"): broadcasting to `all` needs an operator without a
    /// `--nodes` limit; `group:<g>` needs `group:<g>` in `--nodes` (a name glob is not enough).
    #[test]
    fn broadcasts_need_no_limit_for_all_and_the_group_itself_for_a_group() {
        let p = policy();
        let eval = |sender: &str| request("eval", sender);
        // `ops` has no --nodes: all and any group.
        assert!(p
            .check_publish("ops", "plastic/all/in", &eval("ops.a"))
            .is_ok());
        assert!(p
            .check_publish("ops", "plastic/group/prod/in", &eval("ops.a"))
            .is_ok());
        // `alice` has `lab-*,group:lab`: group:lab only; not all, not another group.
        let d = p
            .check_publish("alice", "plastic/all/in", &eval("alice.a"))
            .unwrap_err();
        assert!(d.reason.contains("not every node (all)"), "{}", d.reason);
        assert!(p
            .check_publish("alice", "plastic/group/lab/in", &eval("alice.a"))
            .is_ok());
        let d = p
            .check_publish("alice", "plastic/group/prod/in", &eval("alice.a"))
            .unwrap_err();
        assert!(d.reason.contains("not group:prod"), "{}", d.reason);
        // `lab-1` (a node user with `--nodes lab-*`): a glob reaches no group, nor all.
        assert!(p
            .check_publish("lab-1", "plastic/group/lab/in", &eval("lab-1"))
            .is_err());
        assert!(p
            .check_publish("lab-1", "plastic/all/in", &eval("lab-1"))
            .is_err());
    }

    #[test]
    fn only_nodes_leave_wills_and_only_on_their_own_status() {
        let p = policy();
        assert!(p.check_will("esp-1", "plastic/esp-1/status").is_ok());
        assert!(p.check_will("esp-1", "plastic/lab-1/status").is_err());
        assert!(p.check_will("esp-1", "plastic/lab-1/in").is_err());
        assert!(p.check_will("alice", "plastic/lab-1/in").is_err());
        assert!(p.check_will("viewer1", "plastic/viewer1/status").is_err());
        assert!(p.check_will("root", "anything").is_ok());
        assert!(p.check_retain("esp-1", "plastic/esp-1/status").is_ok());
        assert!(p.check_retain("esp-1", "plastic/esp-1/in").is_err());
        assert!(p.check_retain("ops", "plastic/esp-1/in").is_err());
    }

    #[test]
    fn subscriptions_follow_roles() {
        let p = policy();
        assert!(p.check_subscribe("esp-1", "plastic/esp-1/in").is_ok());
        assert!(p.check_subscribe("esp-1", "plastic/all/in").is_ok());
        assert!(p.check_subscribe("esp-1", "plastic/group/lab/in").is_ok());
        assert!(p.check_subscribe("esp-1", "plastic/+/status").is_ok());
        let err = p.check_subscribe("esp-1", "plastic/lab-1/in").unwrap_err();
        assert!(err.contains("may not subscribe"), "{err}");
        assert!(p.check_subscribe("esp-1", "plastic/+/in").is_err());
        assert!(p.check_subscribe("esp-1", "plastic/#").is_err());
        assert!(p.check_subscribe("esp-1", "#").is_err());
        assert!(p.check_subscribe("esp-1", "plastic/lab-1/log").is_err());
        assert!(p.check_subscribe("esp-1", "plastic/esp-1/events/#").is_ok());
        assert!(p.check_subscribe("viewer1", "plastic/+/log").is_ok());
        // The hub's retained tails (`plastic logs`) are read like the log; only the hub
        // writes them (a node publishes its own `log`, nothing under it).
        assert!(p
            .check_subscribe("viewer1", "plastic/lab-1/log/recent")
            .is_ok());
        assert!(p
            .check_subscribe("esp-1", "plastic/lab-1/log/recent")
            .is_err());
        assert!(p
            .check_publish("esp-1", "plastic/esp-1/log/recent", b"[]")
            .is_err());
        assert!(p.check_subscribe("viewer1", "plastic/+/events/#").is_ok());
        assert!(p
            .check_subscribe("viewer1", "plastic/viewer1.ab/in")
            .is_ok());
        assert!(p.check_subscribe("viewer1", "plastic/esp-1/in").is_err());
        assert!(p
            .check_subscribe("viewer1", "plastic/viewer1.+/in")
            .is_err());
        assert!(p.check_subscribe("alice", "plastic/all/in").is_err());
        assert!(p.check_subscribe("alice", "other/+/status").is_err());
    }

    #[test]
    fn publishes_follow_roles_capabilities_and_patterns() {
        let p = policy();
        // Own inbox: anything (sync markers).
        assert!(p
            .check_publish("viewer1", "plastic/viewer1.a/in", b"{}")
            .is_ok());
        // A viewer publishing exec is refused with a reply to its own inbox.
        let d = p
            .check_publish("viewer1", "plastic/esp-1/in", &request("exec", "viewer1.a"))
            .unwrap_err();
        assert!(d.reason.contains("viewer"), "{}", d.reason);
        let (topic, reply) = d.reply.unwrap();
        assert_eq!(topic, "plastic/viewer1.a/in");
        let reply: Reply = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply.correlation_id, "m1");
        assert_eq!(reply.error.unwrap().kind, "Forbidden");
        // An operator without exec.
        let d = p
            .check_publish("alice", "plastic/lab-2/in", &request("exec", "alice.a"))
            .unwrap_err();
        assert!(
            d.reason.contains("may not exec") && d.reason.contains("eval, gpio.read"),
            "{}",
            d.reason
        );
        assert!(p
            .check_publish("alice", "plastic/lab-2/in", &request("eval", "alice.a"))
            .is_ok());
        // Limited to lab-*.
        let d = p
            .check_publish("alice", "plastic/prod-1/in", &request("eval", "alice.a"))
            .unwrap_err();
        assert!(
            d.reason.contains("may only address lab-*") && d.reason.contains("prod-1"),
            "{}",
            d.reason
        );
        assert!(p
            .check_publish("alice", "plastic/all/in", &request("eval", "alice.a"))
            .is_err());
        assert!(p
            .check_publish("alice", "plastic/group/lab/in", &request("eval", "alice.a"))
            .is_ok());
        // group:lab lets alice reach a node that announces the group.
        let presence = br#"{"name":"esp-1","state":"online","platform":"sim","version":"0","protocol":1,"address":"","groups":["lab"],"since":1}"#;
        assert!(p
            .check_publish("esp-1", "plastic/esp-1/status", presence)
            .is_ok());
        assert!(p
            .check_publish("alice", "plastic/esp-1/in", &request("eval", "alice.a"))
            .is_ok());
        // Commands map to capabilities.
        let gpio =
            br#"{"type":"command","command":"read GPIOs","sender":"alice.a","message_id":"m"}"#;
        assert!(p.check_publish("alice", "plastic/lab-1/in", gpio).is_ok());
        let write =
            br#"{"type":"command","command":"write GPIOs","sender":"alice.a","message_id":"m"}"#;
        assert!(p.check_publish("alice", "plastic/lab-1/in", write).is_err());
        // Spoofed sender / reply_to.
        let d = p
            .check_publish("ops", "plastic/esp-1/in", &request("eval", "alice.a"))
            .unwrap_err();
        assert!(
            d.reply.is_none() && d.reason.contains("sender and reply_to"),
            "{}",
            d.reason
        );
        // Malformed and deeply nested JSON.
        assert!(p
            .check_publish("ops", "plastic/esp-1/in", b"{not json")
            .is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(p
            .check_publish("ops", "plastic/esp-1/in", deep.as_bytes())
            .is_err());
        // Unknown type.
        assert!(p
            .check_publish("ops", "plastic/esp-1/in", &request("format_disk", "ops"))
            .is_err());
        // Nodes: own status/log/events; replies anywhere; requests only as configured.
        assert!(p
            .check_publish("esp-1", "plastic/lab-1/status", presence)
            .is_err());
        assert!(p.check_publish("esp-1", "plastic/esp-1/log", b"x").is_ok());
        assert!(p
            .check_publish(
                "esp-1",
                "plastic/alice.a/in",
                br#"{"type":"result","correlation_id":"m","ok":true,"result":1}"#
            )
            .is_ok());
        assert!(p
            .check_publish(
                "ops",
                "plastic/alice.a/in",
                br#"{"type":"result","correlation_id":"m","ok":true,"result":1}"#
            )
            .is_err());
        assert!(p
            .check_publish("esp-1", "plastic/lab-1/in", &request("eval", "esp-1"))
            .is_err());
        assert!(p
            .check_publish("lab-1", "plastic/lab-2/in", &request("eval", "lab-1"))
            .is_ok());
        assert!(p
            .check_publish("lab-1", "plastic/esp-1/in", &request("eval", "lab-1"))
            .is_err());
        // Topics outside the layout.
        assert!(p
            .check_publish("ops", "plastic/esp-1/status", b"{}")
            .is_err());
        assert!(p.check_publish("ops", "elsewhere", b"{}").is_err());
    }

    /// Pools: a node user takes tasks only from its own pools, and only through the shared
    /// subscription; nobody reads a pool's inbox plainly. Sending to a pool needs `pool:<p>`
    /// in `--nodes` (or no `--nodes` limit).
    #[test]
    fn pools_are_joined_by_their_node_users_and_reached_by_pattern() {
        let p = policy();
        assert!(p
            .check_subscribe("esp-1", "$share/plastic/plastic/pool/workers/in")
            .is_ok());
        for denied in [
            "$share/plastic/plastic/pool/other/in",
            "$share/plastic/plastic/pool/+/in",
            "$share/other/plastic/pool/workers/in",
            "plastic/pool/workers/in",
            "$share/plastic/plastic/esp-1/in",
        ] {
            assert!(p.check_subscribe("esp-1", denied).is_err(), "{denied}");
        }
        assert!(p
            .check_subscribe("alice", "$share/plastic/plastic/pool/workers/in")
            .is_err());
        let eval = |sender: &str| {
            format!(r#"{{"type":"eval","to_evaluate":"1","sender":"{sender}"}}"#).into_bytes()
        };
        assert!(p
            .check_publish("ops", "plastic/pool/workers/in", &eval("ops.a"))
            .is_ok());
        let d = p
            .check_publish("alice", "plastic/pool/workers/in", &eval("alice.a"))
            .unwrap_err();
        assert!(d.reason.contains("not pool:workers"), "{}", d.reason);
        // The member tells the sender it took the task; nobody else sends that notice.
        let taken = br#"{"type":"taken","correlation_id":"c","sender":"esp-1"}"#;
        assert!(p.check_publish("esp-1", "plastic/ops.a/in", taken).is_ok());
        let posing = br#"{"type":"taken","correlation_id":"c","sender":"esp-2"}"#;
        assert!(p
            .check_publish("esp-1", "plastic/ops.a/in", posing)
            .is_err());
        // `pool:workers` reaches the pool's members by name too (an abort goes to them),
        // once a member announced the pool; a pool its user may not join does not count.
        let abort = br#"{"type":"command","command":"abort","kwargs":{"id":"x"},"sender":"bob.a"}"#;
        let presence = |pools: &str| {
            format!(
                r#"{{"name":"esp-1","state":"online","platform":"sim","version":"0","protocol":1,"address":"","pools":{pools},"since":1}}"#
            )
        };
        assert!(p.check_publish("bob", "plastic/esp-1/in", abort).is_err());
        p.check_publish(
            "esp-1",
            "plastic/esp-1/status",
            presence(r#"["other"]"#).as_bytes(),
        )
        .unwrap();
        assert!(p.check_publish("bob", "plastic/esp-1/in", abort).is_err());
        p.check_publish(
            "esp-1",
            "plastic/esp-1/status",
            presence(r#"["workers"]"#).as_bytes(),
        )
        .unwrap();
        assert!(p.check_publish("bob", "plastic/esp-1/in", abort).is_ok());
        let forged = br#"{"type":"taken","correlation_id":"c","sender":"ops.b"}"#;
        assert!(p
            .check_publish("ops", "plastic/alice.a/in", forged)
            .is_err());
    }

    /// `apply` ships code: it needs `exec`, whatever else the user may do.
    #[test]
    fn apply_needs_exec() {
        let p = policy();
        let apply = br#"{"type":"apply","source":"def f(): pass","name":"f","sender":"alice.a"}"#;
        let d = p
            .check_publish("alice", "plastic/lab-1/in", apply)
            .unwrap_err();
        assert!(
            d.reason.contains("needs the `exec` capability"),
            "{}",
            d.reason
        );
        let ops = br#"{"type":"apply","source":"def f(): pass","name":"f","sender":"ops.a"}"#;
        assert!(p.check_publish("ops", "plastic/lab-1/in", ops).is_ok());
    }
}
