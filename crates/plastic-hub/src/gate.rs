//! The gate: a TCP front for each public listener.
//!
//! rmqtt 0.24 closes a connection that never completes its CONNECT only once it has seen the
//! protocol version (its version probe has no timeout), has no cap on connections (its
//! `max_connections` sizes a queue), and cannot be handed sockets we accepted. So the public
//! address is ours: the gate accepts, counts connections per source address, and forwards
//! bytes to rmqtt's listener on 127.0.0.1, announcing the real source address in a PROXY
//! protocol v1 line (rmqtt's `proxy_protocol`, so the hooks see the client's address). A
//! connection that has not logged in within the CONNECT timeout (TLS handshake, CONNECT and
//! password check included) is closed. TLS still ends in rmqtt: the gate forwards bytes,
//! holding a buffer only while bytes are in flight ([`relay`]), since most connections are
//! idle nodes.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::limits::HubLimits;

/// Connection counts and the logins awaited, shared by the gates and the broker's hooks.
pub struct Gate {
    limits: HubLimits,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Connections not yet logged in, by source address; and their login signals.
    pending_by_ip: HashMap<IpAddr, usize>,
    pending: HashMap<SocketAddr, oneshot::Sender<()>>,
    open: usize,
    /// Refusals not yet logged (one line per address every few seconds, not one per
    /// connection).
    refused: HashMap<IpAddr, (u64, Instant)>,
}

/// Log lines about refused connections per address, at most one every this long.
const LOG_EVERY: Duration = Duration::from_secs(5);

impl Gate {
    pub fn new(limits: HubLimits) -> Arc<Gate> {
        Arc::new(Gate {
            limits,
            state: Mutex::default(),
        })
    }

    /// The broker's hook saw `peer` log in: its connection stays.
    pub fn logged_in(&self, peer: SocketAddr) {
        if let Some(tx) = self.state.lock().unwrap().pending.remove(&peer) {
            let _ = tx.send(());
        }
    }

    /// Admits a new connection from `peer`, or says why not.
    fn admit(&self, peer: SocketAddr) -> Result<oneshot::Receiver<()>, String> {
        let mut s = self.state.lock().unwrap();
        let ip = peer.ip();
        let from_ip = s.pending_by_ip.get(&ip).copied().unwrap_or(0);
        let pending = s.pending.len();
        let why = if s.open >= self.limits.connections_total {
            Some(format!(
                "{} connections open (the limit)",
                self.limits.connections_total
            ))
        } else if from_ip >= self.limits.pending_per_address {
            Some(format!(
                "{from_ip} connections from {ip} not logged in yet (the limit per address)"
            ))
        } else if pending >= self.limits.pending_total {
            Some(format!(
                "{pending} connections not logged in yet (the limit for the hub)"
            ))
        } else {
            None
        };
        if let Some(why) = why {
            let now = Instant::now();
            let entry = s.refused.entry(ip).or_insert((0, now - LOG_EVERY));
            entry.0 += 1;
            if now.duration_since(entry.1) >= LOG_EVERY {
                tracing::warn!(
                    remote = %ip,
                    "refused {} connection(s) from {ip} in the last {}s: {why}",
                    entry.0,
                    LOG_EVERY.as_secs()
                );
                *entry = (0, now);
            }
            if s.refused.len() > 10_000 {
                s.refused.clear();
            }
            return Err(why);
        }
        let (tx, rx) = oneshot::channel();
        s.pending.insert(peer, tx);
        *s.pending_by_ip.entry(ip).or_default() += 1;
        s.open += 1;
        Ok(rx)
    }

    /// The connection from `peer` logged in, or ended before that.
    fn settle(&self, peer: SocketAddr) {
        let mut s = self.state.lock().unwrap();
        s.pending.remove(&peer);
        let ip = peer.ip();
        if let Some(n) = s.pending_by_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                s.pending_by_ip.remove(&ip);
            }
        }
    }

    fn closed(&self) {
        self.state.lock().unwrap().open -= 1;
    }
}

/// Serves `listener`, forwarding admitted connections to `backend` (rmqtt's listener with
/// PROXY protocol on). Runs until the process ends.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener, backend: SocketAddr) {
    loop {
        let (inbound, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors, most likely: wait rather than spin.
                tracing::warn!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(logged_in) = gate.admit(peer) else {
            drop(inbound);
            continue;
        };
        let gate = gate.clone();
        tokio::spawn(async move {
            forward(&gate, inbound, peer, backend, logged_in).await;
            gate.closed();
        });
    }
}

async fn forward(
    gate: &Gate,
    inbound: TcpStream,
    peer: SocketAddr,
    backend: SocketAddr,
    logged_in: oneshot::Receiver<()>,
) {
    let deadline = gate.limits.connect_timeout;
    let local = inbound.local_addr().unwrap_or(backend);
    let outbound = async {
        let mut out = TcpStream::connect(backend).await?;
        out.set_nodelay(true)?;
        out.write_all(proxy_line(peer, local).as_bytes()).await?;
        std::io::Result::Ok(out)
    };
    let _ = inbound.set_nodelay(true);
    let outbound = match outbound.await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("cannot reach the broker's listener at {backend}: {e}");
            gate.settle(peer);
            return;
        }
    };
    let copy = relay(inbound, outbound);
    tokio::pin!(copy);
    let in_time = tokio::select! {
        _ = &mut copy => {
            gate.settle(peer);
            return;
        }
        r = tokio::time::timeout(deadline, logged_in) => matches!(r, Ok(Ok(()))),
    };
    gate.settle(peer);
    if !in_time {
        tracing::warn!(
            remote = %peer,
            "closed a connection from {peer}: no login within {}s (the CONNECT timeout)",
            deadline.as_secs_f64()
        );
        return;
    }
    let _ = copy.await;
}

/// Bytes read at most per wake-up of a direction of [`relay`].
pub const RELAY_CHUNK: usize = 16 * 1024;

/// Forwards bytes both ways until both sides have finished (each end's EOF passed on as a
/// write shutdown of the other), or either fails (then both are dropped: closed).
///
/// Not `tokio::io::copy_bidirectional`: it keeps an 8 KiB buffer per direction for the whole
/// life of the connection, 16 KiB per node that sits idle for days (the hub's memory per idle
/// node is a stated goal). Here a buffer exists only while bytes are in flight: a direction
/// waits for its socket to be readable with none, reads into a fresh one (not zeroed:
/// `try_read_buf` fills spare capacity) and lets it go once written.
async fn relay(a: TcpStream, b: TcpStream) -> std::io::Result<()> {
    let (a_read, a_write) = a.into_split();
    let (b_read, b_write) = b.into_split();
    tokio::try_join!(pump(a_read, b_write), pump(b_read, a_write)).map(drop)
}

async fn pump(
    from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
) -> std::io::Result<()> {
    loop {
        from.readable().await?;
        let mut buf = Vec::with_capacity(RELAY_CHUNK);
        match from.try_read_buf(&mut buf) {
            Ok(0) => return to.shutdown().await,
            Ok(_) => to.write_all(&buf).await?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// PROXY protocol v1: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
fn proxy_line(peer: SocketAddr, local: SocketAddr) -> String {
    let family = if peer.is_ipv4() { "TCP4" } else { "TCP6" };
    let local_ip = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V4([127, 0, 0, 1].into())),
        (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (_, ip) => ip,
    };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        peer.ip(),
        local_ip,
        peer.port(),
        local.port()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Two connected sockets: (the end we hold, the end the relay gets).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (theirs, _) = l.accept().await.unwrap();
        (ours, theirs)
    }

    #[tokio::test]
    async fn relay_carries_both_ways_and_passes_each_end_on() {
        let (mut client, inbound) = pair().await;
        let (mut broker, outbound) = pair().await;
        let relay = tokio::spawn(relay(inbound, outbound));
        client.write_all(b"CONNECT").await.unwrap();
        let mut got = [0u8; 7];
        broker.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"CONNECT");
        // More than one read's worth, the other way.
        let big: Vec<u8> = (0..3 * RELAY_CHUNK + 7).map(|i| (i % 251) as u8).collect();
        broker.write_all(&big).await.unwrap();
        let mut back = vec![0u8; big.len()];
        client.read_exact(&mut back).await.unwrap();
        assert!(back == big);
        // The client's end reaches the broker as an end; the broker's answer still arrives.
        client.shutdown().await.unwrap();
        let mut rest = Vec::new();
        broker.write_all(b"bye").await.unwrap();
        assert_eq!(broker.read_to_end(&mut rest).await.unwrap(), 0);
        broker.shutdown().await.unwrap();
        let mut tail = Vec::new();
        client.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail, b"bye");
        relay.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn relay_ends_both_sides_when_one_is_reset() {
        let (client, inbound) = pair().await;
        let (mut broker, outbound) = pair().await;
        let relay = tokio::spawn(relay(inbound, outbound));
        // An RST from the client (linger 0), as a node that loses power's peer might see.
        client.set_zero_linger().unwrap();
        drop(client);
        // The broker's side is closed too, and the relay ends with the client's error.
        let mut rest = Vec::new();
        let _ = broker.read_to_end(&mut rest).await;
        assert!(rest.is_empty());
        let ended = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay ends when one side is reset")
            .unwrap();
        assert!(ended.is_err(), "{ended:?}");
    }

    #[test]
    fn proxy_lines() {
        let p: SocketAddr = "10.1.2.3:40000".parse().unwrap();
        let l: SocketAddr = "192.168.1.10:1883".parse().unwrap();
        assert_eq!(
            proxy_line(p, l),
            "PROXY TCP4 10.1.2.3 192.168.1.10 40000 1883\r\n"
        );
        let p6: SocketAddr = "[::1]:5000".parse().unwrap();
        assert_eq!(
            proxy_line(p6, l),
            "PROXY TCP6 ::1 ::ffff:192.168.1.10 5000 1883\r\n"
        );
    }

    #[test]
    fn caps_per_address_and_in_all() {
        let limits = HubLimits {
            pending_per_address: 2,
            pending_total: 3,
            connections_total: 4,
            ..HubLimits::default()
        };
        let g = Gate::new(limits);
        let a = |port| SocketAddr::from(([10, 0, 0, 1], port));
        let b = |port| SocketAddr::from(([10, 0, 0, 2], port));
        let c = |port| SocketAddr::from(([10, 0, 0, 3], port));
        let _a1 = g.admit(a(1)).unwrap();
        let _a2 = g.admit(a(2)).unwrap();
        assert!(g.admit(a(3)).unwrap_err().contains("per address"));
        let _b1 = g.admit(b(1)).unwrap();
        assert!(g.admit(c(1)).unwrap_err().contains("for the hub"));
        // A login frees its pending slot; the connection still counts as open.
        g.logged_in(a(1));
        g.settle(a(1));
        let _c1 = g.admit(c(1)).unwrap();
        assert!(g.admit(c(2)).unwrap_err().contains("connections open"));
        g.closed();
        g.settle(a(2));
        assert!(g.admit(a(4)).is_ok());
    }
}
