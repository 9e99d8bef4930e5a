//! The task that owns rumqttc's event loop.
//!
//! It only routes: replies to their waiting requests, presence into the table, everything else
//! to the owner's delivery channel. It never awaits a publish or subscribe (rumqttc's request
//! channel is drained by this very loop, so such an await could wait on itself); work that
//! needs to send is spawned.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use plastic_proto::{Reply, TopicKind};
use rand::Rng;
use rumqttc::{Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS, SubscribeFilter};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::state::{Arrived, ConnectFailure, Delivery, Inner};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Before trying the next broker of a list: enough that brokers all down are not hammered
/// round after round, short against the client's timeouts.
const FAILOVER_PAUSE: Duration = Duration::from_millis(50);

/// `per_broker[i]` connects to `inner.brokers[i]`.
pub(crate) async fn run(
    inner: Arc<Inner>,
    mut eventloop: EventLoop,
    per_broker: Vec<MqttOptions>,
    deliveries: mpsc::UnboundedSender<Delivery>,
) {
    let mut backoff = BACKOFF_START;
    let mut generation = 0u64;
    // Connection attempts that failed in a row since the last successful connection, and
    // how many of them the brokers refused (CONNACK), for lists of brokers.
    let mut failed_in_a_row = 0usize;
    let mut refused_in_a_row = 0usize;
    // A connection is up (its loss is not a failed attempt: the same broker is tried again).
    let mut live = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = BACKOFF_START;
                failed_in_a_row = 0;
                refused_in_a_row = 0;
                live = true;
                generation += 1;
                inner.last_error.send_replace(None);
                inner.presence.lock().unwrap().mark_stale();
                tracing::debug!(broker = %inner.current_broker(), generation, "connected");
                tokio::spawn(resubscribe(inner.clone(), generation));
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => route(&inner, publish, &deliveries),
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                if let Some(waiter) = inner.suback_queue.lock().unwrap().pop_front() {
                    inner.suback_by_pkid.lock().unwrap().insert(pkid, waiter);
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    .count();
                if refused > 0 {
                    // A hub with users refuses what the user may not read (another node's
                    // inbox, a group or pool not in its users entry): say so, the rest works.
                    tracing::warn!(
                        broker = %inner.current_broker(),
                        "the broker refused {refused} of {} subscriptions (see the hub's log for which and why)",
                        ack.return_codes.len()
                    );
                }
                if let Some(waiter) = inner.suback_by_pkid.lock().unwrap().remove(&ack.pkid) {
                    let _ = waiter.send(());
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if inner.closing.load(Ordering::SeqCst) => {
                if inner.has_will {
                    // Closing a socket with unread input sends RST, and Linux then drops what
                    // the broker had not read yet, our DISCONNECT included: the broker would
                    // publish the will (`lost`) right after our `offline`. So read on until the
                    // broker closes the connection (Mosquitto at once, rmqtt later), for at most
                    // a second. Clients without a will have nothing to lose and do not wait.
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while eventloop.poll().await.is_ok() {}
                    })
                    .await;
                }
                break;
            }
            Ok(_) => {}
            Err(e) => {
                inner.connected.send_replace(None);
                // Waiters for SUBACKs of the dead connection will never hear back; dropping
                // them tells `subscribe` to wait for the re-subscription instead.
                inner.suback_by_pkid.lock().unwrap().clear();
                // SUBSCRIBEs still queued in rumqttc may be dropped with the connection; their
                // waiters must not steal the SUBACKs of the re-subscription.
                inner.suback_queue.lock().unwrap().clear();
                if inner.closing.load(Ordering::SeqCst) {
                    break;
                }
                let brokers = per_broker.len();
                let failure = match &e {
                    rumqttc::ConnectionError::ConnectionRefused(code) => {
                        refused_in_a_row += 1;
                        let broker = inner.current_broker().to_string();
                        let reason = refusal_reason(*code);
                        // With a list, one broker saying no (a users file not yet updated on
                        // that hub, or "server unavailable") is not the cluster's answer:
                        // waiters hear of a refusal once every broker of a round refused.
                        if refused_in_a_row >= brokers {
                            ConnectFailure::Refused { broker, reason }
                        } else {
                            ConnectFailure::Transient(format!("{broker} refused: {reason}"))
                        }
                    }
                    other => {
                        refused_in_a_row = 0;
                        ConnectFailure::Transient(other.to_string())
                    }
                };
                inner.last_error.send_replace(Some(failure));
                let jitter = rand::thread_rng().gen_range(0.8..1.2);
                if brokers > 1 && std::mem::take(&mut live) {
                    // A connection that was up dropped: its broker once more first (a blip
                    // must not move a node's persistent session to another broker).
                    tracing::warn!(broker = %inner.current_broker(), error = %e, "connection lost; reconnecting");
                    tokio::time::sleep(FAILOVER_PAUSE.mul_f64(jitter)).await;
                } else if brokers > 1 {
                    // Failover: the next broker of the cluster, at once while some of the
                    // list has not failed yet in this round; a full round backs off.
                    failed_in_a_row += 1;
                    let failed = inner.current_broker().clone();
                    let next = (inner.current.load(Ordering::Relaxed) + 1) % brokers;
                    inner.current.store(next, Ordering::Relaxed);
                    eventloop.mqtt_options = per_broker[next].clone();
                    let pause = if failed_in_a_row.is_multiple_of(brokers) {
                        let pause = backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        pause
                    } else {
                        FAILOVER_PAUSE
                    };
                    tracing::warn!(broker = %failed, error = %e, "cannot connect; trying {} in {pause:?}", inner.current_broker());
                    tokio::time::sleep(pause.mul_f64(jitter)).await;
                } else {
                    tracing::warn!(broker = %inner.current_broker(), error = %e, "connection lost; retrying in {backoff:?}");
                    tokio::time::sleep(backoff.mul_f64(jitter)).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    inner.connected.send_replace(None);
}

fn refusal_reason(code: rumqttc::ConnectReturnCode) -> String {
    use rumqttc::ConnectReturnCode as C;
    match code {
        C::BadUserNamePassword => "bad user name or password".into(),
        C::NotAuthorized => "not authorised (a node must use its own name as user and client id; other users' clients are USER or USER.*)".into(),
        C::BadClientId => "client id refused".into(),
        C::ServiceUnavailable => "service unavailable".into(),
        other => format!("{other:?}"),
    }
}

/// Subscribes to every filter again (rumqttc does not) and then announces the connection.
async fn resubscribe(inner: Arc<Inner>, generation: u64) {
    let filters: Vec<SubscribeFilter> = inner
        .subscriptions
        .lock()
        .unwrap()
        .iter()
        .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
        .collect();
    let acked = {
        let _order = inner.subscribe_lock.lock().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        inner.suback_queue.lock().unwrap().push_back(tx);
        if let Err(e) = inner.mqtt.subscribe_many(filters).await {
            tracing::warn!(error = %e, "could not subscribe");
            return;
        }
        rx
    };
    if acked.await.is_ok() {
        inner.connected.send_replace(Some(generation));
    }
}

fn route(inner: &Inner, publish: rumqttc::Publish, deliveries: &mpsc::UnboundedSender<Delivery>) {
    let kind = inner.topics.parse(&publish.topic);
    match &kind {
        Some(TopicKind::Inbox(node)) if node == inner.name.as_str() => {
            if let Some(reply_or_marker) = peek_reply(&publish.payload) {
                match reply_or_marker {
                    Peeked::Marker(id) => {
                        if let Some(tx) = inner.markers.lock().unwrap().remove(&id) {
                            let _ = tx.send(());
                        }
                        return;
                    }
                    Peeked::Taken {
                        correlation_id,
                        member,
                    } => {
                        if let Some(tx) = inner.pending.lock().unwrap().get(&correlation_id) {
                            let _ = tx.send(Arrived::Taken(member));
                        }
                        return;
                    }
                    Peeked::Reply(reply) => {
                        let pending = inner.pending.lock().unwrap();
                        if let Some(tx) = pending.get(&reply.correlation_id) {
                            let _ = tx.send(Arrived::Reply(reply));
                            return;
                        }
                        tracing::debug!(id = %reply.correlation_id, "late or unknown reply dropped");
                        return;
                    }
                }
            }
        }
        Some(TopicKind::Status(node)) if inner.follows_presence_of(node) => {
            let event = inner
                .presence
                .lock()
                .unwrap()
                .update(node, &publish.payload);
            if let Some(event) = event {
                let _ = inner.presence_tx.send(event);
            }
            return;
        }
        _ => {}
    }
    let _ = deliveries.send(Delivery {
        topic: publish.topic,
        kind,
        payload: publish.payload,
        retain: publish.retain,
    });
}

enum Peeked {
    Reply(Box<Reply>),
    Marker(String),
    Taken {
        correlation_id: String,
        member: String,
    },
}

/// Cheap check for the message kinds the client consumes itself (replies, markers, pool
/// members' notices); anything else (requests
/// to a node) goes to the owner untouched.
fn peek_reply(payload: &[u8]) -> Option<Peeked> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    match value
        .get("type")
        .or_else(|| value.get("message_type"))?
        .as_str()?
    {
        "result" => serde_json::from_value(value)
            .ok()
            .map(|r| Peeked::Reply(Box::new(r))),
        "sync" => value
            .get("marker")?
            .as_str()
            .map(|m| Peeked::Marker(m.to_owned())),
        "taken" => serde_json::from_value::<plastic_proto::Taken>(value)
            .ok()
            .and_then(|t| {
                Some(Peeked::Taken {
                    correlation_id: t.correlation_id,
                    member: t.sender?,
                })
            }),
        _ => None,
    }
}
