//! The policy plugged into rmqtt: authentication and ACL hooks.
//!
//! rmqtt calls one handler per hook type; each answers from [`Policy`]. Refused requests are
//! dropped by the broker (QoS 1 is still acknowledged, so the sender does not retry) and their
//! error replies go out through the hub's own client, over the channel returned by
//! [`install`]: publishing from inside a hook would re-enter the broker.

use std::sync::Arc;

use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::types::{AuthResult, PublishAclResult, SubscribeAclResult};
use tokio::sync::mpsc;

use crate::policy::{AuthRefusal, Listener, Policy};

/// An error reply to publish: (topic, payload).
pub type Refusal = (String, Vec<u8>);

struct PolicyHandler {
    policy: Arc<Policy>,
    refusals: mpsc::Sender<Refusal>,
    hashing: Arc<tokio::sync::Semaphore>,
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
                // argon2 takes tens of milliseconds of CPU: off the broker's async threads.
                let policy = self.policy.clone();
                let (u, p, c) = (
                    username.map(str::to_owned),
                    password.map(<[u8]>::to_vec),
                    client_id.to_owned(),
                );
                // At most two at a time: each takes 19 MiB, and a flood of logins must not
                // take the hub's memory (or both cores).
                let permit = self.hashing.clone().acquire_owned().await;
                let decision = tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    policy.authenticate_on(listener, u.as_deref(), p.as_deref(), &c)
                })
                .await
                .unwrap_or(Err(AuthRefusal::NotAuthorized));
                // rmqtt publishes a will without the publish check: check it here.
                let will = connect
                    .last_will()
                    .map(|lw| rmqtt::types::Publish::try_from(lw).map(|p| p.topic.to_string()));
                let decision = match (decision, username, will) {
                    (Ok(superuser), Some(user), Some(topic)) => {
                        let topic = topic.unwrap_or_default();
                        match self.policy.check_will(user, &topic) {
                            Ok(()) => Ok(superuser),
                            Err(reason) => {
                                tracing::warn!(client_id, "{reason}");
                                Err(AuthRefusal::Will)
                            }
                        }
                    }
                    (decision, _, _) => decision,
                };
                let result = match decision {
                    Ok(superuser) => AuthResult::Allow(superuser, None),
                    Err(refusal) => {
                        tracing::warn!(
                            user = username.unwrap_or("(none)"),
                            client_id,
                            remote = ?connect.id().remote_addr,
                            "refused a connection: {}",
                            refusal.describe()
                        );
                        match refusal {
                            AuthRefusal::BadCredentials => AuthResult::BadUsernameOrPassword,
                            AuthRefusal::NotAuthorized
                            | AuthRefusal::Will
                            | AuthRefusal::NodesOnly => AuthResult::NotAuthorized,
                        }
                    }
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let username = session.id.username_ref();
                let filter: &str = subscribe.topic_filter.as_ref();
                let result = match self.policy.check_subscribe(username, filter) {
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

/// Registers the policy's hooks on a broker context. Returns where the hub's client must take
/// refusal replies from.
pub async fn install(scx: &ServerContext, policy: Arc<Policy>) -> mpsc::Receiver<Refusal> {
    let (tx, rx) = mpsc::channel(1024);
    let register = scx.extends.hook_mgr().register();
    let hashing = Arc::new(tokio::sync::Semaphore::new(2));
    for typ in [
        Type::ClientAuthenticate,
        Type::ClientSubscribeCheckAcl,
        Type::MessagePublishCheckAcl,
    ] {
        register
            .add(
                typ,
                Box::new(PolicyHandler {
                    policy: policy.clone(),
                    refusals: tx.clone(),
                    hashing: hashing.clone(),
                }),
            )
            .await;
    }
    register.start().await;
    rx
}
