//! Recently seen request ids, so a request delivered twice runs once.
//!
//! QoS 1 means "at least once": after a reconnect the broker may deliver a request again. The
//! node remembers the last [`CAPACITY`] message ids with their reply, answers a duplicate with
//! the first reply, and ignores a duplicate that arrives while the first is still running.

use std::collections::{HashMap, VecDeque};

pub const CAPACITY: usize = 4096;

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
}

#[derive(Default)]
pub struct Recent {
    entries: HashMap<String, Option<Option<SentReply>>>,
    order: VecDeque<String>,
}

impl Recent {
    /// Records `id` as running unless it was seen before.
    pub fn begin(&mut self, id: &str) -> Seen {
        match self.entries.get(id) {
            Some(None) => return Seen::Running,
            Some(Some(reply)) => return Seen::Done(reply.clone()),
            None => {}
        }
        if self.order.len() >= CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
        self.entries.insert(id.to_owned(), None);
        self.order.push_back(id.to_owned());
        Seen::New
    }

    pub fn finish(&mut self, id: &str, reply: Option<SentReply>) {
        if let Some(entry) = self.entries.get_mut(id) {
            *entry = Some(reply);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_get_the_first_reply_and_memory_stays_bounded() {
        let mut r = Recent::default();
        assert_eq!(r.begin("a"), Seen::New);
        assert_eq!(r.begin("a"), Seen::Running);
        r.finish("a", Some(("t".into(), b"reply".to_vec())));
        assert_eq!(
            r.begin("a"),
            Seen::Done(Some(("t".into(), b"reply".to_vec())))
        );
        for i in 0..CAPACITY {
            r.begin(&i.to_string());
        }
        assert_eq!(r.entries.len(), CAPACITY);
        assert_eq!(r.begin("a"), Seen::New, "the oldest id was forgotten");
    }
}
