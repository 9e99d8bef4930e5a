//! Embedding rmqtt.
//!
//! Two rmqtt facts matter here: retained messages need the retainer plugin registered (without
//! it rmqtt drops them with only a warning, and presence would vanish), and its listener has
//! TCP_NODELAY off by default (a QoS 1 round trip then takes ~88 ms instead of ~0.1 ms).
//!
//! The public listeners are served by the gate (`gate.rs`): rmqtt listens on 127.0.0.1 with
//! PROXY protocol on, the gate accepts on the public address, caps connections and closes
//! those that do not log in within the CONNECT timeout. Every number is in [`HubLimits`].

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmqtt::context::ServerContext;
use rmqtt::net::Builder;
use rmqtt::server::MqttServer;
use tokio::sync::mpsc;

use crate::auth::Refusal;
use crate::gate::Gate;
use crate::limits::HubLimits;
use crate::policy::Policy;

/// Retained presence must outlive any message expiry: `0s` means never expire.
const RETAINER_CONFIG: &str = r#"
retained_message_ttl = "0s"
max_retained_messages = 0
max_payload_size = "1MB"
[storage]
type = "ram"
"#;

/// rmqtt's listener ids: the main listener, the hub's own, and the one for boards.
const MAIN_LISTENER_ID: u16 = 1;
/// Each MQTT connection's read and write buffers to start with, in bytes (rmqtt-net's
/// default is 8 KiB each, kept for the life of the connection).
pub const IO_BUFFER_CAPACITY: usize = 1024;
const INTERNAL_LISTENER_ID: u16 = 2;
pub(crate) const BOARD_LISTENER_ID: u16 = 3;

/// What the embedded broker serves.
pub struct BrokerOptions {
    pub listen: SocketAddr,
    /// A second, plain-TCP listener that admits node users only (boards too small for TLS).
    /// Needs `policy`.
    pub board_listen: Option<SocketAddr>,
    /// Serve TLS on `listen` with this certificate chain and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Authentication and access rules; `None` lets anyone connect and do anything.
    pub policy: Option<Arc<Policy>>,
    /// Timeouts, caps and budgets.
    pub limits: HubLimits,
    /// The topic prefix (what the history recognises as requests and replies).
    pub topics: plastic_proto::Topics,
    /// Metrics and history.
    pub observer: crate::observe::Observer,
}

/// A running embedded broker.
pub struct BrokerHandle {
    /// The bound address (useful when asked for port 0).
    pub addr: SocketAddr,
    /// A plain-TCP listener on 127.0.0.1 for the hub's own client, whatever `listen` is (an
    /// address the hub cannot dial, or TLS whose certificate names another host).
    pub internal_addr: SocketAddr,
    /// Error replies to requests the policy refused, for the hub's client to publish.
    pub refusals: Option<mpsc::Receiver<Refusal>>,
    /// The board listener's bound address.
    pub board_addr: Option<SocketAddr>,
}

/// Binds and serves MQTT 3.1.1 and 5 in the background (on the current tokio runtime) until
/// the process ends.
pub async fn start_broker(opts: BrokerOptions) -> anyhow::Result<BrokerHandle> {
    if opts.board_listen.is_some() && opts.policy.is_none() {
        anyhow::bail!("a board listener admits node users only, so it needs a users file");
    }
    let scx = ServerContext::new()
        .plugins_config_map_add("rmqtt-retainer", RETAINER_CONFIG)
        .build()
        .await;
    rmqtt_retainer::register(&scx, true, false)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("registering the retainer plugin")?;
    // Pools are MQTT shared subscriptions; rmqtt's default refuses them.
    *scx.extends.shared_subscription_mut().await = Box::new(crate::pools::TakeTurns::default());
    let limits = opts.limits.clone();
    let gate = Gate::new(limits.clone());
    let refusals = crate::auth::install(
        &scx,
        opts.policy.clone(),
        &limits,
        gate.clone(),
        crate::observe::ObserveHandler {
            topics: opts.topics.clone(),
            observer: opts.observer.clone(),
        },
    )
    .await;
    let anonymous = opts.policy.is_none();
    let builder = |addr: SocketAddr| {
        Builder::new()
            .name("plastic")
            .laddr(addr)
            .nodelay(true)
            .reuseaddr(Some(true))
            .allow_anonymous(anonymous)
            .max_packet_size(1024 * 1024)
            // 1 KiB read and write buffers to start (they grow for a larger packet): an idle
            // node's connection holds 2 KiB of them, not 16 (patches/rmqtt-net adds the
            // option; docs/performance.md, "Hub memory per idle node").
            .io_buffer_capacity(IO_BUFFER_CAPACITY)
            // Requests are small and many: a deeper in-flight window raises pipelined throughput.
            .max_inflight(NonZeroU16::new(128).expect("non-zero"))
            .max_mqueue_len(limits.queued_messages_per_session)
            .session_expiry_interval(limits.session_expiry)
            // Messages queued for an offline session (MQTT 3.1.1 messages carry no expiry of
            // their own): rmqtt's default is 5 minutes, shorter than the session.
            .message_expiry_interval(limits.queue_expiry)
            // The CONNECT packet's own wait (the gate's timeout covers the rest).
            .handshake_timeout(limits.connect_timeout)
            // Admins skip the subscribe hook (superusers): rmqtt's own cap holds them. One
            // above ours, so that everyone else meets ours first, with its log line.
            .max_subscriptions(limits.subscriptions_per_session + 1)
    };
    // A public listener: rmqtt on 127.0.0.1, behind the gate on `addr`.
    let gated = |addr: SocketAddr| -> anyhow::Result<(Builder, tokio::net::TcpListener)> {
        let public = std::net::TcpListener::bind(addr)
            .map_err(anyhow::Error::from)
            .and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(tokio::net::TcpListener::from_std(l)?)
            })?;
        let inner = builder(SocketAddr::from(([127, 0, 0, 1], 0))).proxy_protocol(true);
        Ok((inner, public))
    };
    let (cert, key) = match &opts.tls {
        Some((cert, key)) => (
            Some(cert.to_string_lossy().into_owned()),
            Some(key.to_string_lossy().into_owned()),
        ),
        None => (None, None),
    };
    let (main, public) =
        gated(opts.listen).with_context(|| format!("cannot listen on {}", opts.listen))?;
    let addr = public.local_addr()?;
    let main = main
        .tls_cert(cert)
        .tls_key(key)
        .bind()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot listen on 127.0.0.1 behind the gate")?;
    let main_backend = main.local_addr().map_err(|e| anyhow::anyhow!("{e}"))?;
    let main = if opts.tls.is_some() {
        main.tls()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("cannot set up TLS with --tls-cert and --tls-key")?
    } else {
        main.tcp().map_err(|e| anyhow::anyhow!("{e}"))?
    };
    tokio::spawn(crate::gate::serve(gate.clone(), public, main_backend));
    let internal = builder(SocketAddr::from(([127, 0, 0, 1], 0)))
        .bind()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("cannot listen on 127.0.0.1 for the hub's own client")?;
    let internal_addr = internal.local_addr().map_err(|e| anyhow::anyhow!("{e}"))?;
    let internal = internal.tcp().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut server = MqttServer::new(scx)
        .listener_by_id(main, MAIN_LISTENER_ID)
        .listener_by_id(internal, INTERNAL_LISTENER_ID);
    let mut board_addr = None;
    if let Some(board) = opts.board_listen {
        let (inner, public) =
            gated(board).with_context(|| format!("cannot listen for boards on {board}"))?;
        board_addr = Some(public.local_addr()?);
        let listener = inner
            .bind()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot listen on 127.0.0.1 behind the board gate")?;
        let backend = listener.local_addr().map_err(|e| anyhow::anyhow!("{e}"))?;
        let listener = listener.tcp().map_err(|e| anyhow::anyhow!("{e}"))?;
        server = server.listener_by_id(listener, BOARD_LISTENER_ID);
        tokio::spawn(crate::gate::serve(gate.clone(), public, backend));
    }
    tokio::spawn(trim_loop());
    server.build().start();
    Ok(BrokerHandle {
        addr,
        internal_addr,
        refusals,
        board_addr,
    })
}

static TRIM: AtomicBool = AtomicBool::new(false);

/// Asks for the allocator to return freed memory to the system soon (after sessions ended).
pub(crate) fn trim_soon() {
    TRIM.store(true, Ordering::Relaxed);
}

/// glibc's malloc keeps freed memory in its arenas; after a session with a big queue ended,
/// `malloc_trim` hands it back, so the hub's RSS falls again. At most once every 2 s.
async fn trim_loop() {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if TRIM.swap(false, Ordering::Relaxed) {
            let _ = tokio::task::spawn_blocking(|| {
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only releases free memory; it takes the arenas' locks.
                unsafe {
                    libc::malloc_trim(0);
                }
            })
            .await;
        }
    }
}
