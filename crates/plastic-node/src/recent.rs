//! Recently seen request ids, so a request delivered twice runs once.
//!
//! QoS 1 means "at least once": after a reconnect the broker may deliver a request again. The
//! node remembers the last [`CAPACITY`] message ids with their reply, answers a duplicate with
//! the first reply, and ignores a duplicate that arrives while the first is still running.
//!
//! For signed requests the same memory is the replay guard: besides the ids it keeps the
//! *replay floor*, the newest `time_stamp` among the signed ids it forgot. A signed request at
//! or below the floor may be a replay of a forgotten id, so the node refuses it (docs/protocol.md,
//! "Signed requests"). Memory stays bounded and no id is ever run twice.

use std::collections::{HashMap, VecDeque};

pub const CAPACITY: usize = 4096;

/// Reply bytes kept at most, over all remembered ids. Without it, 4,096 replies of up to
/// 16 KiB each could hold 64 MiB (measured: a node at 150 MiB). Past it a finished request is
/// still remembered, so it never runs twice, but a duplicate of it gets no second reply.
pub const MAX_KEPT_BYTES: usize = 2 * 1024 * 1024;

/// A reply as sent: the topic and the payload.
pub type SentReply = (String, Vec<u8>);

#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// First time: run it.
    New,
    /// Still running: its reply will come.
    Running,
    /// Done: send this reply again (or nothing, if none was sent).
    Done(Option<SentReply>),
    /// A signed request not remembered and not newer than everything forgotten: it may have
    /// run before. Not recorded.
    Replayed,
    /// Named by an `abort` before it arrived: answer `Aborted`, do not run it.
    Aborted,
}

/// What the memory knows of an id an `abort` names (it never holds the request itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortLookup {
    Running,
    Finished,
    /// Not seen: now remembered as aborted, so it is refused when it arrives.
    Unseen,
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    Running,
    Done(Option<SentReply>),
    /// Aborted before it arrived.
    Aborted,
}

pub struct Recent {
    entries: HashMap<String, Entry>,
    /// Ids oldest first, with the signed request's time stamp.
    order: VecDeque<(String, Option<f64>)>,
    replay_floor: f64,
    /// Bytes of the replies kept (topics and payloads).
    kept_bytes: usize,
}

impl Recent {
    /// `replay_floor` starts at the node's start time: signed requests stamped before it may
    /// have run before a restart.
    pub fn new(replay_floor: f64) -> Self {
        Recent {
            entries: HashMap::new(),
            order: VecDeque::new(),
            replay_floor,
            kept_bytes: 0,
        }
    }

    /// True when `id` is running or done: a copy of it must not be refused as new work.
    pub fn knows(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    /// Records `id` (with a signed request's time stamp) as running unless it was seen before,
    /// or, for a signed request, unless it may be a replay of a forgotten one. One call, one
    /// lock: checking and recording separately would let a concurrent request evict the id in
    /// between.
    pub fn begin(&mut self, id: &str, signed_at: Option<f64>) -> Seen {
        match self.entries.get(id) {
            Some(Entry::Running) => return Seen::Running,
            Some(Entry::Done(reply)) => return Seen::Done(reply.clone()),
            Some(Entry::Aborted) => {
                // Its signed time stamp now counts for the replay floor when the id is
                // forgotten, as any signed request's (the abort recorded none).
                if let Some(ts) = signed_at {
                    if let Some(slot) = self.order.iter_mut().find(|(i, _)| i == id) {
                        slot.1 = Some(ts);
                    }
                }
                return Seen::Aborted;
            }
            None => {}
        }
        if signed_at.is_some_and(|ts| ts <= self.replay_floor) {
            return Seen::Replayed;
        }
        self.remember(id, Entry::Running, signed_at);
        Seen::New
    }

    /// What an `abort` of `id` finds; an id never seen is remembered as aborted (it takes a
    /// place in the memory like any request, so a flood of aborts is bounded the same way).
    pub fn abort(&mut self, id: &str) -> AbortLookup {
        match self.entries.get(id) {
            Some(Entry::Running) => AbortLookup::Running,
            Some(Entry::Done(_)) => AbortLookup::Finished,
            Some(Entry::Aborted) => AbortLookup::Unseen,
            None => {
                self.remember(id, Entry::Aborted, None);
                AbortLookup::Unseen
            }
        }
    }

    fn remember(&mut self, id: &str, entry: Entry, signed_at: Option<f64>) {
        if self.order.len() >= CAPACITY {
            if let Some((old, stamp)) = self.order.pop_front() {
                if let Some(Entry::Done(Some((topic, payload)))) = self.entries.remove(&old) {
                    self.kept_bytes -= topic.len() + payload.len();
                }
                if let Some(stamp) = stamp {
                    self.replay_floor = self.replay_floor.max(stamp);
                }
            }
        }
        self.entries.insert(id.to_owned(), entry);
        self.order.push_back((id.to_owned(), signed_at));
    }

    pub fn finish(&mut self, id: &str, reply: Option<SentReply>) {
        let size = reply.as_ref().map_or(0, |(t, p)| t.len() + p.len());
        let reply = reply.filter(|_| self.kept_bytes + size <= MAX_KEPT_BYTES);
        if let Some(entry) = self.entries.get_mut(id) {
            if reply.is_some() {
                self.kept_bytes += size;
            }
            *entry = Entry::Done(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_get_the_first_reply_and_memory_stays_bounded() {
        let mut r = Recent::new(0.0);
        assert_eq!(r.begin("a", None), Seen::New);
        assert_eq!(r.begin("a", None), Seen::Running);
        r.finish("a", Some(("t".into(), b"reply".to_vec())));
        assert_eq!(
            r.begin("a", None),
            Seen::Done(Some(("t".into(), b"reply".to_vec())))
        );
        for i in 0..CAPACITY {
            r.begin(&i.to_string(), None);
        }
        assert_eq!(r.entries.len(), CAPACITY);
        assert_eq!(r.begin("a", None), Seen::New, "the oldest id was forgotten");
    }

    #[test]
    fn an_aborted_id_is_refused_on_arrival_and_then_answered_from_memory() {
        let mut r = Recent::new(0.0);
        assert_eq!(r.abort("x"), AbortLookup::Unseen);
        assert_eq!(
            r.abort("x"),
            AbortLookup::Unseen,
            "asking again changes nothing"
        );
        assert_eq!(r.begin("x", None), Seen::Aborted);
        r.finish("x", Some(("t".into(), b"aborted".to_vec())));
        assert_eq!(r.abort("x"), AbortLookup::Finished);
        assert_eq!(
            r.begin("x", None),
            Seen::Done(Some(("t".into(), b"aborted".to_vec())))
        );
        assert_eq!(r.begin("y", None), Seen::New);
        assert_eq!(r.abort("y"), AbortLookup::Running);
        for i in 0..CAPACITY {
            r.abort(&i.to_string());
        }
        assert_eq!(
            r.entries.len(),
            CAPACITY,
            "aborts are bounded like requests"
        );
    }

    #[test]
    fn an_aborted_signed_request_raises_the_replay_floor_when_forgotten() {
        let mut r = Recent::new(100.0);
        r.abort("s");
        assert_eq!(r.begin("s", Some(500.0)), Seen::Aborted);
        for i in 0..CAPACITY {
            r.begin(&i.to_string(), None);
        }
        assert!(!r.knows("s"));
        assert_eq!(
            r.begin("s", Some(500.0)),
            Seen::Replayed,
            "a replay cannot run it"
        );
    }

    #[test]
    fn kept_replies_are_bounded_in_bytes() {
        let mut r = Recent::new(0.0);
        let big = vec![0u8; 16 * 1024];
        for i in 0..CAPACITY {
            let id = i.to_string();
            r.begin(&id, None);
            r.finish(&id, Some(("t".into(), big.clone())));
        }
        assert!(r.kept_bytes <= MAX_KEPT_BYTES, "{}", r.kept_bytes);
        // Past the budget: remembered (never runs twice), without a reply to repeat.
        assert_eq!(r.begin(&(CAPACITY - 1).to_string(), None), Seen::Done(None));
        // Forgetting old ids frees their bytes for new replies.
        for i in CAPACITY..2 * CAPACITY {
            let id = i.to_string();
            r.begin(&id, None);
            r.finish(&id, Some(("t".into(), b"small".to_vec())));
        }
        assert_eq!(r.kept_bytes, CAPACITY * 6);
    }

    #[test]
    fn a_forgotten_signed_id_can_never_run_again() {
        let mut r = Recent::new(100.0);
        assert_eq!(
            r.begin("early", Some(99.0)),
            Seen::Replayed,
            "stamped before the start"
        );
        assert!(!r.knows("early"), "a refused replay is not recorded");
        assert_eq!(r.begin("s0", Some(200.0)), Seen::New);
        assert_eq!(
            r.begin("s0", Some(200.0)),
            Seen::Running,
            "remembered: a duplicate"
        );
        r.finish("s0", None);
        for i in 1..=CAPACITY {
            r.begin(&format!("s{i}"), Some(200.0 + i as f64));
        }
        assert!(!r.knows("s0"));
        assert_eq!(
            r.begin("s0", Some(200.0)),
            Seen::Replayed,
            "forgotten, and not newer than the floor"
        );
        assert_eq!(r.begin("fresh", Some(201.5)), Seen::New);
    }
}
