//! `plastic hub`: the embedded broker plus the registry's console.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use plastic_client::BrokerUrl;
use plastic_hub::history::{Record, Recorder, Retention};
use plastic_hub::metrics::HubMetrics;
use plastic_hub::observe::Observer;
use plastic_hub::policy::Policy;
use plastic_hub::users::{Role, Users, HUB_USER};
use plastic_hub::{describe_change, start_broker, BrokerOptions, HubLimits, Registry};
use plastic_proto::Topics;
use plastic_web::WebOptions;
use rumqttc::QoS;

use crate::global::Global;
use crate::session::{ca_file, users_file};

/// `plastic hub`'s options.
#[derive(Debug, Args, Clone)]
#[command(
    after_help = "Examples:\n  plastic hub                                   # loopback only, no login\n  plastic hub --listen 0.0.0.0:8883 --tls-cert hub.pem --tls-key hub.key   # with users.toml\n  plastic hub --board-listen 0.0.0.0:1883       # boards on the LAN (node users only)\n  plastic hub --external --broker mqtt://10.0.0.5:1883   # registry console for another broker"
)]
pub struct HubArgs {
    /// Address for the embedded broker (port 0 picks a free port and prints it)
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: SocketAddr,
    /// Use the broker of --broker / PLASTIC_BROKER instead of embedding one (implied by
    /// --broker on the command line)
    #[arg(long)]
    pub external: bool,
    /// Allow listening beyond loopback without authentication or TLS: anyone who can
    /// reach the port can then run code on every node (or read passwords)
    #[arg(long)]
    pub insecure: bool,
    /// Users file: with it every connection must log in (default: $PLASTIC_HOME/users.toml
    /// if it exists)
    #[arg(long, env = "PLASTIC_USERS")]
    pub users: Option<PathBuf>,
    /// Also listen here, without TLS, for boards (ESP8266s cannot afford TLS): this listener
    /// admits node users only (`plastic board add`), so operators still need the TLS listener
    #[arg(long)]
    pub board_listen: Option<SocketAddr>,
    /// Serve MQTT over TLS with this certificate chain (PEM); see `plastic certs init`
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM)
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// How long a message waits in an offline session's queue (a request for a node that is
    /// away) before the broker drops it: 30s, 10m, 2h
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub queue_expiry: Duration,
    /// How long a disconnected node's (persistent) session, with its queue, is kept
    #[arg(long, default_value = "2h", value_parser = parse_duration)]
    pub session_expiry: Duration,
    /// Close connections that have not logged in after this long
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Sessions per user, connected or parked (persistent ones count until they expire)
    #[arg(long, default_value_t = HubLimits::default().sessions_per_user)]
    pub sessions_per_user: usize,
    /// Subscriptions per session
    #[arg(long, default_value_t = HubLimits::default().subscriptions_per_session)]
    pub subscriptions_per_session: usize,
    /// MiB queued for one offline session before the hub ends it (its queue discarded)
    #[arg(long, default_value_t = mib(HubLimits::default().queued_bytes_per_session))]
    pub queued_mib_per_session: u64,
    /// MiB queued for offline sessions in the whole hub before it ends the session that
    /// crossed the line
    #[arg(long, default_value_t = mib(HubLimits::default().queued_bytes_total))]
    pub queued_mib_total: u64,
    /// The dashboard, HTTP API and /metrics: an address, or `off`. Beyond loopback it needs
    /// users and TLS (the hub's --tls-cert) unless --insecure
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = parse_http)]
    pub http: HttpListen,
    /// The request history (SQLite): a file, or `off` (default: $PLASTIC_HOME/history.db)
    #[arg(long)]
    pub history: Option<String>,
    /// Keep history for this long: 30d, 12h
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub history_max_age: Duration,
    /// Keep at most this many MiB of history (the oldest rows go first)
    #[arg(long, default_value_t = 256)]
    pub history_max_mib: u64,
}

/// `--http`: where the web side listens, or nowhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HttpListen {
    Off,
    /// The default address: taken by another program, the hub says so and goes on without it.
    Default(SocketAddr),
    At(SocketAddr),
}

fn parse_http(s: &str) -> Result<HttpListen, String> {
    if s == "off" {
        return Ok(HttpListen::Off);
    }
    let addr: SocketAddr = s
        .parse()
        .map_err(|_| format!("`{s}` is not an address like 127.0.0.1:8080 (or `off`)"))?;
    Ok(if s == "127.0.0.1:8080" {
        HttpListen::Default(addr)
    } else {
        HttpListen::At(addr)
    })
}

fn mib(bytes: u64) -> u64 {
    bytes / (1024 * 1024)
}

/// `90`, `90s`, `500ms`, `10m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (30s, 10m, 2h)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(format!("`{s}`: the unit is ms, s, m, h or d")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` must be more than zero"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl HubArgs {
    fn tls(&self) -> Option<(PathBuf, PathBuf)> {
        self.tls_cert.clone().zip(self.tls_key.clone())
    }

    fn limits(&self) -> HubLimits {
        HubLimits {
            queue_expiry: self.queue_expiry,
            session_expiry: self.session_expiry,
            connect_timeout: self.connect_timeout,
            sessions_per_user: self.sessions_per_user,
            subscriptions_per_session: self.subscriptions_per_session,
            queued_bytes_per_session: self.queued_mib_per_session * 1024 * 1024,
            queued_bytes_total: self.queued_mib_total * 1024 * 1024,
            ..HubLimits::default()
        }
    }
}

pub async fn run(global: &Global, args: HubArgs) -> Result<ExitCode> {
    let topics = Topics::new(&global.prefix)?;
    let files = crate::fdlimit::raise();
    if !args.external {
        println!(
            "plastic hub: open-files limit {files}: room for about {} connections (docs/scaling.md)",
            files.saturating_sub(crate::fdlimit::hub_needs(0)) / 3
        );
    }
    let metrics = Arc::new(HubMetrics::new());
    let history_file = match args.history.as_deref() {
        Some("off") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => {
            let home = crate::session::plastic_home();
            std::fs::create_dir_all(&home)
                .with_context(|| format!("cannot create {}", home.display()))?;
            Some(home.join("history.db"))
        }
    };
    let retention = Retention {
        max_age: args.history_max_age,
        max_bytes: args.history_max_mib * 1024 * 1024,
    };
    let observer = Observer {
        metrics: metrics.clone(),
        history: Recorder::open(history_file.as_deref(), retention, metrics.clone())?,
    };
    let mut web_policy = None;
    let mut tokens_file = None;
    let mut web_off = false;
    let (broker, refusals) = if args.external {
        // A cluster's list: the registry fails over as every client does (docs/scaling.md).
        let url = crate::session::brokers(global)?;
        println!(
            "plastic hub: using the external broker at {} (it enforces its own authentication)",
            plastic_client::brokers_to_string(&url)
        );
        // The web side acts with this hub's broker credentials: without a users file of its
        // own it would lend them to every local user, so it needs one here.
        let path = users_file(args.users.clone());
        if args.users.is_some() || path.exists() {
            let users = Users::load(&path)?;
            if users.users.is_empty() {
                anyhow::bail!(
                    "{} has no users; add one with `plastic user add`",
                    path.display()
                );
            }
            web_policy = Some(Arc::new(Policy::new(
                topics.clone(),
                users,
                plastic_proto::new_message_id(),
            )));
            tokens_file = Some(path.with_file_name("tokens.toml"));
        } else if let HttpListen::At(addr) = args.http {
            anyhow::bail!(
                "--http {addr} with --external needs a users file (none at {}): the web side would lend the broker credentials to every local user",
                path.display()
            );
        } else if args.http != HttpListen::Off {
            println!(
                "plastic hub: no dashboard: with --external the web side needs a users file (none at {}), or it would lend the broker credentials to every local user",
                path.display()
            );
            web_off = true;
        }
        (url, None)
    } else {
        let explicit = args.users.is_some();
        let path = users_file(args.users.clone());
        let users = if explicit || path.exists() {
            let users = Users::load(&path)?;
            if users.users.is_empty() {
                anyhow::bail!(
                    "{} has no users; add one with `plastic user add`",
                    path.display()
                );
            }
            Some((path.clone(), users))
        } else {
            None
        };
        check_exposure(&args, users.is_some())?;
        if args.board_listen.is_some() && users.is_none() {
            anyhow::bail!(
                "--board-listen admits node users only, and there is no users file at {}: add one user per board with `plastic board add NAME --hub HOST`",
                path.display()
            );
        }
        let hub_password = plastic_proto::new_message_id();
        let policy = users.as_ref().map(|(_, users)| {
            Arc::new(Policy::new(
                topics.clone(),
                users.clone(),
                hub_password.clone(),
            ))
        });
        let handle = start_broker(BrokerOptions {
            listen: args.listen,
            board_listen: args.board_listen,
            tls: args.tls(),
            policy: policy.clone(),
            limits: args.limits(),
            topics: topics.clone(),
            observer: observer.clone(),
        })
        .await?;
        web_policy = policy;
        tokens_file = Some(path.with_file_name("tokens.toml"));
        // Tests and scripts read the bound port from this line.
        println!(
            "plastic hub: MQTT broker listening on {}{}",
            handle.addr,
            if args.tls_cert.is_some() {
                " (TLS)"
            } else {
                ""
            }
        );
        if let Some(board) = handle.board_addr {
            println!("plastic hub: board listener on {board} (node users only, no TLS)");
        }
        match &users {
            Some((path, users)) => {
                println!(
                    "plastic hub: authentication on: {} users from {}",
                    users.users.len(),
                    path.display()
                );
                warn_old_node_users(users);
            }
            None => println!(
                "plastic hub: authentication off (no users file at {}){}",
                path.display(),
                if args.listen.ip().is_loopback() {
                    "; loopback only"
                } else {
                    ""
                }
            ),
        }
        let mut url = BrokerUrl::local(handle.internal_addr.port());
        if users.is_some() {
            url.username = Some(HUB_USER.to_owned());
            url.password = Some(hub_password);
        }
        (vec![url], handle.refusals)
    };
    let registry = Registry::connect(broker, topics, ca_file(global))
        .await
        .context("the hub's registry cannot connect to the broker")?;
    if let Some(mut refusals) = refusals {
        let client = registry.client().clone();
        tokio::spawn(async move {
            while let Some((topic, payload)) = refusals.recv().await {
                let _ = client
                    .publish(&topic, payload, QoS::AtLeastOnce, false)
                    .await;
            }
        });
    }
    let mut events = registry.events();
    for node in registry.nodes().await? {
        println!("{}", crate::output::shown(&plastic_hub::describe(&node)));
    }
    if let Some(path) = &history_file {
        println!("plastic hub: history in {}", path.display());
    }
    if !web_off {
        serve_web(
            &args,
            WebOptions {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                tls: args.tls(),
                policy: web_policy,
                tokens: tokens_file,
                client: registry.client().clone(),
                observer: observer.clone(),
                history: history_file.clone(),
                activity: registry.activity_sender(),
                tails: registry.tails(),
            },
        )
        .await?;
    }
    let shutdown = super::node::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            event = events.recv() => match event {
                Ok(event) => {
                    // The hub's clock: a node's own `since` may be its connect time (a last
                    // will) or a board's clock that was never set.
                    observer.history.record(Record::Presence {
                        at: plastic_hub::history::unix_now(),
                        node: event.current.name.clone(),
                        state: event.current.state.as_str().to_owned(),
                    });
                    println!("{}", crate::output::shown(&describe_change(&event)))
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => println!("({n} presence changes not shown)"),
                Err(_) => break,
            },
        }
    }
    registry.shutdown().await;
    println!("plastic hub: stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts the web side where `--http` says. The default address, taken by another program,
/// is not an error (the hub is still a hub); an address asked for is.
async fn serve_web(args: &HubArgs, mut opts: WebOptions) -> Result<()> {
    let (addr, asked) = match args.http {
        HttpListen::Off => return Ok(()),
        HttpListen::Default(addr) => (addr, false),
        HttpListen::At(addr) => (addr, true),
    };
    if !addr.ip().is_loopback() {
        let missing = match (opts.policy.is_some(), opts.tls.is_some()) {
            (true, true) => None,
            (false, _) => {
                Some("without users: anyone who can reach it could run code on every node")
            }
            (true, false) => Some(
                "without TLS: passwords and session cookies would cross the network in clear text",
            ),
        };
        if let Some(missing) = missing {
            if !args.insecure {
                anyhow::bail!(
                    "refusing to serve HTTP on {addr} {missing}. Use --http 127.0.0.1:8080, or pass --insecure on a network you trust"
                );
            }
            eprintln!("WARNING: serving HTTP on {addr} {missing} (--insecure)");
        }
    }
    opts.listen = addr;
    let scheme = if opts.tls.is_some() { "https" } else { "http" };
    match plastic_web::serve(opts).await {
        Ok(handle) => {
            // Tests and scripts read the bound port from this line.
            println!(
                "plastic hub: dashboard and API on {scheme}://{}",
                handle.addr
            );
            Ok(())
        }
        Err(e) if !asked => {
            println!("plastic hub: no dashboard: {e:#} (choose another address with --http ADDR)");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Node users reach no node without `nodes`, and join no group without `groups` (users files
/// from before those rules meant "every node" and "any group"): say so once at start.
fn warn_old_node_users(users: &Users) {
    for (name, u) in &users.users {
        if u.role != Role::Node {
            continue;
        }
        if !u.allow.is_empty() && u.nodes.is_empty() {
            println!(
                "plastic hub: note: node user {name} has --allow but no --nodes, so it reaches no node (give it --nodes PATTERN, '*' for all)"
            );
        }
    }
}

/// Safe defaults: beyond loopback, the hub needs users (else anyone could run code on every
/// node) and TLS (else passwords and code cross the network in clear), unless `--insecure`.
fn check_exposure(args: &HubArgs, authenticated: bool) -> Result<()> {
    if args.listen.ip().is_loopback() {
        return Ok(());
    }
    let missing = match (authenticated, args.tls_cert.is_some()) {
        (true, true) => return Ok(()),
        (false, _) => "without authentication: anyone who can reach it could run code on every node (add users with `plastic user add`)",
        (true, false) => "without TLS: passwords and code would cross the network in clear text (see `plastic certs init`)",
    };
    if !args.insecure {
        anyhow::bail!(
            "refusing to listen on {} {missing}. Listen on 127.0.0.1, or pass --insecure on a network you trust",
            args.listen
        );
    }
    eprintln!(
        "WARNING: listening on {} {missing} (--insecure)",
        args.listen
    );
    Ok(())
}
