//! The host bridge: what Python on the node reaches of it (the [`Host`] trait): its name, its
//! pins, sending and requesting over MQTT, events, the log topic and reset.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use plastic_client::Client;
use plastic_proto::{unix_seconds, ErrorInfo, NodeName, Request, MAX_PAYLOAD};
use rumqttc::QoS;
use serde_json::{Map, Value};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::gpio::Gpio;
use crate::log_topic::LogTopic;
use crate::python::Host;

/// What Python reaches of the node (see [`Host`]).
pub struct NodeHost {
    name: NodeName,
    gpio: Arc<dyn Gpio>,
    client: Client,
    /// Python threads are not tokio's: they block on the node's runtime through this.
    runtime: Handle,
    /// Asks the message loop for a reset (it runs there, not on a Python thread).
    resets: mpsc::UnboundedSender<()>,
    log: LogTopic,
    /// Python shared with other nodes of this process (`plastic sim`).
    shared_interpreter: bool,
}

impl NodeHost {
    pub fn new(
        name: NodeName,
        gpio: Arc<dyn Gpio>,
        client: Client,
        resets: mpsc::UnboundedSender<()>,
        log: LogTopic,
        shared_interpreter: bool,
    ) -> Self {
        NodeHost {
            name,
            gpio,
            client,
            runtime: Handle::current(),
            resets,
            log,
            shared_interpreter,
        }
    }
}

fn check_size(len: usize) -> Result<(), String> {
    if len > MAX_PAYLOAD {
        return Err(format!(
            "the message is {len} bytes; the limit is {MAX_PAYLOAD}"
        ));
    }
    Ok(())
}

impl Host for NodeHost {
    fn node_name(&self) -> &str {
        self.name.as_str()
    }

    fn gpio(&self) -> &dyn Gpio {
        self.gpio.as_ref()
    }

    fn unique_id(&self) -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(self.name.as_str().as_bytes())[..6].to_vec()
    }

    fn send(&self, to: &str, msg: Map<String, Value>) -> Result<String, String> {
        let mut request = Request::new(msg);
        let topics = self.client.topics();
        // `all` and `group:<g>` broadcast, as the agent's `plastic.send` does.
        let topic = match to.strip_prefix("group:") {
            _ if to == "all" => topics.all_inbox(),
            Some(group) => topics.group_inbox(group).map_err(|e| e.to_string())?,
            None => topics.inbox(&NodeName::parse(to).map_err(|e| e.to_string())?),
        };
        let id = request.stamp(self.client.name(), to, unix_seconds(SystemTime::now()));
        check_size(request.to_bytes().len())?;
        self.runtime
            .block_on(
                self.client
                    .publish(&topic, request.to_bytes(), QoS::AtLeastOnce, false),
            )
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    fn request(
        &self,
        to: &str,
        msg: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Value, ErrorInfo> {
        let to = NodeName::parse(to).map_err(|e| ErrorInfo::from(&e))?;
        match self
            .runtime
            .block_on(self.client.request(&to, Request::new(msg), timeout))
        {
            Ok(reply) if reply.ok => Ok(reply.result),
            Ok(reply) => Err(reply
                .error
                .unwrap_or_else(|| ErrorInfo::new("RemoteError", "error reply without details"))),
            Err(plastic_client::ClientError::Timeout { node, seconds }) => Err(ErrorInfo::new(
                "Timeout",
                format!("no reply from {node} within {seconds} s"),
            )),
            Err(e) => Err(ErrorInfo::new("ConnectionError", e.to_string())),
        }
    }

    fn publish_event(&self, topic: &str, data: Value) -> Result<(), String> {
        let topic = self
            .client
            .topics()
            .events_sub(&self.name, topic)
            .map_err(|e| e.to_string())?;
        let payload = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
        check_size(payload.len())?;
        self.runtime
            .block_on(self.client.publish(&topic, payload, QoS::AtMostOnce, false))
            .map_err(|e| e.to_string())
    }

    fn shares_engine_with(&self, to: &str) -> bool {
        to == self.name.as_str() || self.shared_interpreter
    }

    fn log(&self, source: &str, level: &str, text: &str) {
        self.log.line(source, level, text);
    }

    fn reset(&self) {
        let _ = self.resets.send(());
    }
}
