//! The request path: one payload from an inbox, admitted (or not), run, answered.
//!
//! Each step is one call: [`admit`] decides (pure), [`dispatch::run`] runs, the [`Outbox`]
//! answers. A request never comes back here: a refusal is answered, not re-handled.
//!
//! [`Outbox`]: crate::outbox::Outbox

use std::time::SystemTime;

use plastic_proto::unix_seconds;

use crate::admission::{admit, Admission, AdmissionInput, Ignored};
use crate::commands::After;
use crate::dispatch;
use crate::state::Shared;

/// How long a pool request may run before its member says it took it (`taken`).
pub const TAKEN_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

/// One delivery on the node's inbox, `all`, a group's or a pool's inbox.
pub struct Arrival<'a> {
    pub payload: &'a [u8],
    /// The broker's retain flag: set on the replay of a retained message.
    pub retained: bool,
    /// Requests in progress on the node when this one arrived.
    pub in_flight: usize,
    /// Delivered from a pool's topic: the sender learns who took it (`taken`) before it runs.
    pub from_pool: bool,
}

/// Handles one delivery to the end: at most one reply, always through the outbox.
pub async fn handle(node: &Shared, arrival: Arrival<'_>) {
    let signing = node.signing();
    let input = AdmissionInput {
        payload: arrival.payload,
        retained: arrival.retained,
        own_name: node.name().as_str(),
        key: signing.key.as_ref(),
        now: unix_seconds(SystemTime::now()),
        started_at: signing.started_at,
        max_skew: signing.max_skew,
        in_flight: arrival.in_flight,
    };
    let admission = admit(&input, &mut node.recent().lock().unwrap());
    match admission {
        Admission::Run(admitted) => {
            let id = admitted.envelope.message_id.clone();
            let facilities = node.facilities();
            let run = dispatch::run(&facilities, admitted.body, id, admitted.deadline);
            let (outcome, after) = if arrival.from_pool {
                // A pool's sender follows the member that took its request; a reply that comes
                // quickly names the member itself, so the notice goes only when it does not
                // (docs/protocol.md, "Pools": a third of a pool's messages saved).
                tokio::pin!(run);
                tokio::select! {
                    done = &mut run => done,
                    () = tokio::time::sleep(TAKEN_AFTER) => {
                        node.outbox().taken(&admitted.envelope).await;
                        run.await
                    }
                }
            } else {
                run.await
            };
            node.outbox()
                .answer(&admitted.envelope, outcome, true)
                .await;
            if after == After::Reset {
                // Replied: now the message loop ends and the node program starts again.
                node.request_reset();
            }
        }
        Admission::AnswerFromMemory(Some(sent)) => node.outbox().resend(sent).await,
        Admission::AnswerFromMemory(None) => {}
        Admission::Refuse(refusal) => node.outbox().refuse(refusal).await,
        Admission::Ignore(ignored) => match &ignored {
            // Without an answer to give, the log topic is the only witness.
            Ignored::Unanswerable { .. } => {
                if let Some(line) = ignored.log_line() {
                    node.log("node", "error", &line);
                }
            }
            Ignored::Reply { correlation_id } => {
                tracing::debug!(%correlation_id, "reply for nobody waiting; dropped")
            }
            Ignored::StillRunning { message_id } => {
                tracing::debug!(id = %message_id, "duplicate of a running request ignored")
            }
        },
    }
}
