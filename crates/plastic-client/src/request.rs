//! Requests: stamping and signing, publishing, and the async loop that drives a [`Wait`] with
//! replies, presence changes, reconnections and timers, and publishes the copies it asks for.

use std::time::{Duration, SystemTime};

use plastic_proto::{unix_seconds, NodeName, Reply, Request};
use rumqttc::QoS;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::state::{Arrived, PendingGuard};
use crate::wait::{Outcome, Resend, Wait, WaitConfig};
use crate::{Client, ClientError};

/// What a request was published as, for publishing the same bytes again.
struct Sent<'a> {
    topic: &'a str,
    payload: &'a [u8],
}

impl Client {
    /// Sends a request without waiting for anything (`need_result` is left as the caller set
    /// it), signed when the client has the target's key. Returns the message id.
    pub async fn send(&self, target: &NodeName, request: Request) -> Result<String, ClientError> {
        let (id, topic, payload) = self.prepare(target, request)?;
        self.publish(&topic, payload, QoS::AtLeastOnce, false)
            .await?;
        Ok(id)
    }

    /// Stamps and (with the target's key) signs a request: its id, topic and payload.
    fn prepare(
        &self,
        target: &NodeName,
        request: Request,
    ) -> Result<(String, String, Vec<u8>), ClientError> {
        let mut request = request;
        let id = request.stamp(&self.inner.name, target.as_str(), now());
        let mut payload = request.to_bytes();
        if let Some(key) = self.inner.keys.get(target).map_err(ClientError::Key)? {
            payload = key.sign(&payload);
        }
        Ok((id, self.inner.topics.inbox(target), payload))
    }

    /// Sends a request with `need_result` set and waits for its one reply. An error reply from
    /// the node is `Ok(reply)` with `reply.ok == false`; `Err` means no reply came.
    ///
    /// At most [`ClientOptions::window`](crate::ClientOptions::window) requests to one node
    /// are in flight; a request beyond waits here for room first. `timeout` covers both
    /// waits; one that ran out before the request could be sent is `Err(NotSent)`: it
    /// certainly did not run.
    pub async fn request(
        &self,
        target: &NodeName,
        mut request: Request,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        let started = Instant::now();
        let _permit = self.window_permit(target, timeout).await?;
        let timeout = timeout.saturating_sub(started.elapsed());
        request.set_need_result(true);
        let boot = self.presence_of(target.as_str()).and_then(|p| p.boot);
        let (id, topic, payload) = self.prepare(target, request)?;
        let expected = [(target.to_string(), boot)];
        let mut outcomes = self
            .publish_and_wait(&id, &topic, &payload, expected, false, timeout)
            .await?;
        outcomes
            .pop()
            .map(|(_, outcome)| outcome)
            .unwrap_or(Err(ClientError::Closed))
    }

    /// Room in `target`'s window, waited for at most `timeout` (`None`: no window).
    async fn window_permit(
        &self,
        target: &NodeName,
        timeout: Duration,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ClientError> {
        if self.inner.window == 0 {
            return Ok(None);
        }
        let window = self.inner.window_of(target.as_str());
        match tokio::time::timeout(timeout, window.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::NotSent {
                node: target.to_string(),
                window: self.inner.window,
                seconds: timeout.as_secs_f64(),
            }),
        }
    }

    /// Publishes one request to a broadcast `topic` (or any topic) and collects replies until
    /// every node in `expected` answered or `timeout` passed. Replies from nodes not expected
    /// are collected too. Nodes that did not answer get `Err(Timeout)`.
    pub async fn request_many(
        &self,
        topic: &str,
        receiver: &str,
        mut request: Request,
        expected: &[NodeName],
        timeout: Duration,
    ) -> Result<Vec<(String, Result<Reply, ClientError>)>, ClientError> {
        request.set_need_result(true);
        let id = request.stamp(&self.inner.name, receiver, now());
        let payload = request.to_bytes();
        let expected = expected.iter().map(|n| {
            let boot = self.presence_of(n.as_str()).and_then(|p| p.boot);
            (n.to_string(), boot)
        });
        self.publish_and_wait(&id, topic, &payload, expected, true, timeout)
            .await
    }

    /// Sends a request to a pool (docs/protocol.md, "Pools"): exactly one member takes it. The
    /// outcome is named by the member that took it (or `pool:<pool>` when none did before
    /// `timeout`). Never published twice: another member could run a copy.
    pub async fn request_pool(
        &self,
        pool: &str,
        mut request: Request,
        timeout: Duration,
    ) -> Result<(String, Result<Reply, ClientError>), ClientError> {
        let topic = self
            .inner
            .topics
            .pool_inbox(pool)
            .map_err(ClientError::Proto)?;
        // The member that takes it is known only then: follow every node's presence, so its
        // loss is seen.
        self.track_presence().await?;
        request.set_need_result(true);
        let receiver = format!("pool:{pool}");
        let id = request.stamp(&self.inner.name, &receiver, now());
        let payload = request.to_bytes();
        let mut outcomes = self
            .publish_and_wait(&id, &topic, &payload, [(receiver, None)], false, timeout)
            .await?;
        outcomes.pop().ok_or(ClientError::Closed)
    }

    /// Registers the request's id, publishes it and waits. Presence and connection changes
    /// are listened to from before the publish, so none is missed.
    async fn publish_and_wait(
        &self,
        id: &str,
        topic: &str,
        payload: &[u8],
        expected: impl IntoIterator<Item = (String, Option<String>)>,
        broadcast: bool,
        timeout: Duration,
    ) -> Result<Vec<(String, Outcome)>, ClientError> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _pending = PendingGuard::new(&self.inner, id, tx);
        let mut presence = self.presence_events();
        let mut connection = self.connection();
        let connected = connection.borrow_and_update().is_some();
        let pool = expected_pool(topic, &self.inner.topics);
        let config = WaitConfig {
            broadcast,
            resend: !pool,
            connected,
            pool,
        };
        let wait = Wait::new(expected, config, Instant::now().into_std(), timeout);
        self.publish(topic, payload.to_vec(), QoS::AtLeastOnce, false)
            .await?;
        let sent = Sent { topic, payload };
        self.collect(wait, &mut rx, &mut presence, &mut connection, &sent)
            .await
    }

    /// Drives a [`Wait`] until it is done (the rules are in `wait.rs`): feeds it replies,
    /// presence changes, connection changes and its own timers, and publishes the copies it
    /// asks for.
    async fn collect(
        &self,
        mut wait: Wait,
        rx: &mut mpsc::UnboundedReceiver<Arrived>,
        presence: &mut tokio::sync::broadcast::Receiver<crate::PresenceEvent>,
        connection: &mut tokio::sync::watch::Receiver<Option<u64>>,
        sent: &Sent<'_>,
    ) -> Result<Vec<(String, Outcome)>, ClientError> {
        loop {
            let resend = {
                let table = self.inner.presence.lock().unwrap();
                wait.poll_resend(|node| table.get_fresh(node))
            };
            if let Some(resend) = resend {
                self.resend(sent, resend).await?;
            }
            let Some(wake) = wait.poll_timeout() else {
                break;
            };
            tokio::select! {
                arrived = rx.recv() => match arrived {
                    Some(Arrived::Reply(reply)) => wait.handle_reply(*reply, now_std()),
                    Some(Arrived::Taken(member)) => {
                        let presence = self.presence_of(&member);
                        wait.handle_taken(&member, presence.as_ref().and_then(|p| p.boot.clone()));
                        // Its presence may have changed before the notice came (a member that
                        // died at once): what it says now counts from now.
                        if let Some(p) = presence.filter(|p| p.state != plastic_proto::NodeState::Online) {
                            wait.handle_presence(&p, now_std());
                        }
                    }
                    None => return Err(ClientError::Closed),
                },
                event = presence.recv() => {
                    // Lagged: changes were missed; the next ones (and the timeout) still come.
                    if let Ok(event) = event {
                        wait.handle_presence(&event.current, now_std());
                    }
                }
                changed = connection.changed() => {
                    if changed.is_err() {
                        return Err(ClientError::Closed);
                    }
                    if connection.borrow_and_update().is_some() {
                        wait.handle_reconnect(now_std());
                    } else {
                        wait.handle_disconnect();
                    }
                }
                _ = tokio::time::sleep_until(Instant::from_std(wake)) => wait.handle_timeout(now_std()),
            }
        }
        Ok(wait.into_outcomes())
    }

    /// Publishes the same bytes again where the wait says.
    async fn resend(&self, sent: &Sent<'_>, resend: Resend) -> Result<(), ClientError> {
        match resend {
            Resend::Original => {
                tracing::debug!(topic = sent.topic, "resending a request");
                self.publish(sent.topic, sent.payload.to_vec(), QoS::AtLeastOnce, false)
                    .await?;
            }
            Resend::Inboxes(nodes) => {
                for node in nodes {
                    if let Ok(name) = NodeName::parse(&node) {
                        let topic = self.inner.topics.inbox(&name);
                        tracing::debug!(%topic, "resending a broadcast request to one node");
                        self.publish(&topic, sent.payload.to_vec(), QoS::AtLeastOnce, false)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// True when `topic` is a pool's inbox: the wait then follows the member that takes it.
fn expected_pool(topic: &str, topics: &plastic_proto::Topics) -> bool {
    matches!(
        topics.parse(topic),
        Some(plastic_proto::TopicKind::PoolInbox(_))
    )
}

fn now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// The wait's clock: tokio's (paused in tests), as a std `Instant`.
fn now_std() -> std::time::Instant {
    Instant::now().into_std()
}
