//! The hub's numeric limits, and the failed-login budget (token buckets), as plain data and
//! functions of an `Instant`: unit-tested without sockets or clocks. docs/security.md lists
//! every number ("Limits").

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Every limit the embedded hub enforces. [`HubLimits::default`] is what `plastic hub` uses
/// unless told otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct HubLimits {
    /// A connection that has not logged in by then is closed (TLS handshake, CONNECT and
    /// password check included).
    pub connect_timeout: Duration,
    /// Connections not yet logged in, per source address and in all.
    pub pending_per_address: usize,
    pub pending_total: usize,
    /// Open connections in all (logged in or not), per public listener.
    pub connections_total: usize,
    /// Password checks (argon2 runs) that may fail per source address: a burst, then one more
    /// per `refill`. A right password gives its token back.
    pub failed_logins_per_address: Budget,
    /// The same for the whole hub.
    pub failed_logins_total: Budget,
    /// argon2 runs at once (each holds its memory, 19 MiB with the default parameters).
    pub hashing_threads: usize,
    /// Sessions per user (connected, or persistent and parked), the hub's own excepted.
    pub sessions_per_user: usize,
    /// Subscriptions per session (admins: rmqtt's own per-listener cap, the same number).
    pub subscriptions_per_session: usize,
    /// Messages queued per session (rmqtt's queue length), whatever their size.
    pub queued_messages_per_session: usize,
    /// Bytes queued for offline sessions, per session and in all: a session over either is
    /// ended (its queue discarded) with a log line.
    pub queued_bytes_per_session: u64,
    pub queued_bytes_total: u64,
    /// How long a message waits in an offline session's queue before the broker drops it.
    pub queue_expiry: Duration,
    /// How long a disconnected persistent session is kept.
    pub session_expiry: Duration,
}

impl Default for HubLimits {
    fn default() -> Self {
        HubLimits {
            connect_timeout: Duration::from_secs(10),
            pending_per_address: 32,
            pending_total: 256,
            connections_total: 4096,
            failed_logins_per_address: Budget {
                burst: 10,
                refill: Duration::from_secs(6),
            },
            failed_logins_total: Budget {
                burst: 60,
                refill: Duration::from_millis(500),
            },
            hashing_threads: 1,
            sessions_per_user: 32,
            subscriptions_per_session: 64,
            queued_messages_per_session: 10_000,
            queued_bytes_per_session: 64 * 1024 * 1024,
            queued_bytes_total: 512 * 1024 * 1024,
            queue_expiry: Duration::from_secs(2 * 60 * 60),
            session_expiry: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// A token bucket's shape: `burst` tokens, one more every `refill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub burst: u32,
    pub refill: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(budget: Budget, now: Instant) -> Self {
        Bucket {
            tokens: budget.burst as f64,
            at: now,
        }
    }

    fn refill(&mut self, budget: Budget, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let per = budget.refill.as_secs_f64().max(1e-9);
        self.tokens = (self.tokens + elapsed / per).min(budget.burst as f64);
        self.at = now;
    }

    fn is_full(&self, budget: Budget) -> bool {
        self.tokens >= budget.burst as f64
    }
}

/// Why a password check was not even tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// This source address failed too many logins lately.
    Address,
    /// The whole hub did.
    Hub,
}

impl OverBudget {
    pub fn describe(self) -> &'static str {
        match self {
            OverBudget::Address => "this address is over its failed-login budget",
            OverBudget::Hub => "the hub is over its failed-login budget",
        }
    }
}

/// Failed-login budgets per source address and for the whole hub. A check takes a token from
/// both before argon2 runs; a right password gives them back, so only failures count.
pub struct LoginBudget {
    per_address: Budget,
    total: Budget,
    addresses: HashMap<IpAddr, Bucket>,
    hub: Bucket,
}

/// Addresses remembered before full buckets are forgotten.
const ADDRESSES_KEPT: usize = 10_000;

impl LoginBudget {
    pub fn new(per_address: Budget, total: Budget, now: Instant) -> Self {
        LoginBudget {
            per_address,
            total,
            addresses: HashMap::new(),
            hub: Bucket::full(total, now),
        }
    }

    /// Takes a token for one password check from `addr`, or says which budget is spent.
    pub fn take(&mut self, addr: IpAddr, now: Instant) -> Result<(), OverBudget> {
        if self.addresses.len() >= ADDRESSES_KEPT {
            let per = self.per_address;
            self.addresses.retain(|_, b| {
                b.refill(per, now);
                !b.is_full(per)
            });
        }
        let per = self.per_address;
        let bucket = self
            .addresses
            .entry(addr)
            .or_insert_with(|| Bucket::full(per, now));
        bucket.refill(per, now);
        if bucket.tokens < 1.0 {
            return Err(OverBudget::Address);
        }
        self.hub.refill(self.total, now);
        if self.hub.tokens < 1.0 {
            return Err(OverBudget::Hub);
        }
        bucket.tokens -= 1.0;
        self.hub.tokens -= 1.0;
        Ok(())
    }

    /// Gives back the token of a check that found the right password.
    pub fn give_back(&mut self, addr: IpAddr) {
        if let Some(b) = self.addresses.get_mut(&addr) {
            b.tokens = (b.tokens + 1.0).min(self.per_address.burst as f64);
        }
        self.hub.tokens = (self.hub.tokens + 1.0).min(self.total.burst as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> (LoginBudget, Instant) {
        let now = Instant::now();
        let per = Budget {
            burst: 3,
            refill: Duration::from_secs(2),
        };
        let total = Budget {
            burst: 5,
            refill: Duration::from_secs(1),
        };
        (LoginBudget::new(per, total, now), now)
    }

    #[test]
    fn an_address_gets_its_burst_then_one_per_refill() {
        let (mut b, t) = budget();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(b.take(a, t), Ok(()));
        }
        assert_eq!(b.take(a, t), Err(OverBudget::Address));
        assert_eq!(
            b.take(a, t + Duration::from_millis(1900)),
            Err(OverBudget::Address)
        );
        assert_eq!(b.take(a, t + Duration::from_secs(2)), Ok(()));
        assert_eq!(
            b.take(a, t + Duration::from_secs(2)),
            Err(OverBudget::Address)
        );
    }

    #[test]
    fn other_addresses_keep_their_budget_until_the_hub_is_spent() {
        let (mut b, t) = budget();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let d: IpAddr = "10.0.0.3".parse().unwrap();
        for _ in 0..3 {
            b.take(a, t).unwrap();
        }
        assert_eq!(b.take(a, t), Err(OverBudget::Address));
        assert_eq!(b.take(c, t), Ok(()));
        assert_eq!(b.take(c, t), Ok(()));
        // Five tokens for the hub in all: the sixth check anywhere waits for the refill.
        assert_eq!(b.take(d, t), Err(OverBudget::Hub));
        assert_eq!(b.take(d, t + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn right_passwords_give_their_tokens_back() {
        let (mut b, t) = budget();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            b.take(a, t).unwrap();
            b.give_back(a);
        }
        assert_eq!(b.take(a, t), Ok(()));
    }
}
