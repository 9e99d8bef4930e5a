//! A TCP fault proxy for the tests: sits between a node (or client) and the broker on
//! 127.0.0.1 and, on command, delays traffic, stalls it, cuts a connection in the middle of an
//! MQTT packet, drops every connection (FIN), or resets them (RST, as a crashed peer or a NAT
//! timeout does).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Forward everything at once.
    Pass,
    /// Hold every chunk this long before forwarding it.
    Delay(Duration),
    /// Forward nothing (bytes wait in the proxy) until the mode changes.
    Stall,
    /// Forward half of the next chunk from the broker, then close both sides: the peer sees a
    /// torn packet.
    CutNextMidPacket,
}

struct Shared {
    mode: Mutex<Fault>,
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
    /// Bytes forwarded from the broker to the peer, and from the peer to the broker.
    downstream_bytes: AtomicU64,
    upstream_bytes: AtomicU64,
    cuts: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:`upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Fault::Pass),
            conns: Mutex::default(),
            downstream_bytes: AtomicU64::new(0),
            upstream_bytes: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                // The broker may be down (being restarted): the peer sees a closed connection
                // and retries, as it would against the real broker.
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                s.conns
                    .lock()
                    .unwrap()
                    .push((client.try_clone().unwrap(), server.try_clone().unwrap()));
                for (from, to, down) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        false,
                    ),
                    (server, client, true),
                ] {
                    let s = s.clone();
                    std::thread::spawn(move || pump(from, to, down, &s));
                }
            }
        });
        FaultProxy { port, shared }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        *self.shared.mode.lock().unwrap() = fault;
    }

    pub fn downstream_bytes(&self) -> u64 {
        self.shared.downstream_bytes.load(Ordering::SeqCst)
    }

    pub fn upstream_bytes(&self) -> u64 {
        self.shared.upstream_bytes.load(Ordering::SeqCst)
    }

    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(Ordering::SeqCst)
    }

    /// Drops every open connection the polite way (FIN both ways), as a middlebox or a peer
    /// closing does.
    pub fn drop_all(&self) {
        for (a, b) in self.shared.conns.lock().unwrap().drain(..) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }

    /// Resets every open connection: SO_LINGER 0 makes close() send RST instead of FIN.
    pub fn reset_all(&self) {
        for (a, b) in self.shared.conns.lock().unwrap().drain(..) {
            for s in [a, b] {
                set_linger_zero(&s);
                let _ = s.shutdown(Shutdown::Both);
                drop(s);
            }
        }
    }
}

fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, downstream: bool, s: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        loop {
            let mode = *s.mode.lock().unwrap();
            match mode {
                Fault::Stall => std::thread::sleep(Duration::from_millis(20)),
                Fault::Delay(d) => {
                    std::thread::sleep(d);
                    break;
                }
                Fault::CutNextMidPacket if downstream && n >= 2 => {
                    *s.mode.lock().unwrap() = Fault::Pass;
                    let _ = to.write_all(&buf[..n / 2]);
                    s.cuts.fetch_add(1, Ordering::SeqCst);
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    return;
                }
                _ => break,
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        let counter = if downstream {
            &s.downstream_bytes
        } else {
            &s.upstream_bytes
        };
        counter.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
