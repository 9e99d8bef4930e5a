//! argon2 verification on a fixed number of threads, with memory the hub maps and unmaps
//! itself.
//!
//! The argon2 crate allocates its memory (19 MiB with the default parameters) on the heap for
//! every hash. glibc's malloc raises its mmap threshold after the first such block is freed,
//! so later blocks come from per-thread arenas and stay resident: a login flood grew the hub by
//! ~20 MiB per failed login, to ~850 MiB. Here each hashing thread maps its blocks with
//! `mmap` when work arrives, reuses them while more work is queued, and unmaps them as soon
//! as its queue is empty: the memory is back with the system between floods, and during one
//! it is at most `threads` x m_cost.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

type Job = (String, String, oneshot::Sender<bool>);

/// A queue in front of `threads` hashing threads.
pub struct Hasher {
    jobs: mpsc::SyncSender<Job>,
}

/// Jobs waiting beyond the running ones: a full queue refuses at once (the budget in
/// `limits.rs` normally keeps it far from full).
const QUEUE: usize = 64;

impl Hasher {
    pub fn new(threads: usize) -> Hasher {
        let (tx, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("plastic-argon2-{i}"))
                .spawn(move || worker(&rx))
                .expect("spawning a hashing thread");
        }
        Hasher { jobs: tx }
    }

    /// Does `password` match the argon2 PHC string `phc`? `None` when the queue is full.
    pub async fn verify(&self, password: String, phc: String) -> Option<bool> {
        let (tx, rx) = oneshot::channel();
        self.jobs.try_send((password, phc, tx)).ok()?;
        rx.await.ok()
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Option<Blocks> = None;
    loop {
        let next = {
            let rx = rx.lock().unwrap();
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {
                    // Nothing queued: give the memory back before sleeping.
                    memory = None;
                    match rx.recv() {
                        Ok(job) => Some(job),
                        Err(_) => return,
                    }
                }
            }
        };
        let Some((password, phc, reply)) = next else {
            return;
        };
        let matched = verify_with(&mut memory, &password, &phc);
        let _ = reply.send(matched);
    }
}

/// Verifies like `argon2::PasswordVerifier`, in `memory` (grown to the hash's m_cost).
fn verify_with(memory: &mut Option<Blocks>, password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Some(Ok(version)), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(hash.algorithm),
        hash.version.map(Version::try_from),
        Params::try_from(&hash),
        hash.salt,
        hash.hash,
    ) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.block_count();
    if memory.as_ref().is_none_or(|m| m.len < blocks) {
        *memory = None;
        match Blocks::map(blocks) {
            Some(m) => *memory = Some(m),
            None => return false,
        }
    }
    let memory = memory.as_mut().expect("mapped above");
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory.as_mut_slice()[..blocks],
        )
        .is_err()
    {
        return false;
    }
    let theirs = expected.as_bytes();
    out.len() == theirs.len() && out.iter().zip(theirs).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

/// `len` argon2 blocks in an anonymous private mapping of our own.
struct Blocks {
    ptr: *mut Block,
    len: usize,
}

// The mapping belongs to one thread at a time.
unsafe impl Send for Blocks {}

impl Blocks {
    fn map(len: usize) -> Option<Blocks> {
        let bytes = len.checked_mul(Block::SIZE)?;
        // SAFETY: a fresh anonymous mapping, checked for failure; page alignment (4096)
        // satisfies Block's alignment (64).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Blocks {
            ptr: ptr.cast(),
            len,
        })
    }

    fn as_mut_slice(&mut self) -> &mut [Block] {
        // SAFETY: `len` blocks were mapped readable and writable (zeroed pages are valid
        // Blocks: plain u64 arrays), and `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe {
            libc::munmap(self.ptr.cast(), self.len * Block::SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::{dummy_hash, hash_password, verify_password};

    #[test]
    fn verifies_like_the_argon2_crate() {
        let phc = hash_password("s3cret").unwrap();
        let mut mem = None;
        assert!(verify_with(&mut mem, "s3cret", &phc));
        assert!(!verify_with(&mut mem, "s3cret ", &phc));
        assert!(!verify_with(&mut mem, "s3cret", "not a hash"));
        let dummy = dummy_hash();
        assert!(!verify_with(&mut mem, "s3cret", &dummy));
        assert!(!verify_password("s3cret", &dummy));
        // The dummy costs what a real check costs: the same parameters.
        let params = |p: &str| Params::try_from(&PasswordHash::new(p).unwrap()).unwrap();
        assert_eq!(params(&dummy), params(&phc));
    }

    /// docs/security.md ("Limits"): 64 password checks wait at most; one more is refused at
    /// once (auth.rs turns `None` into a refused login), and a freed slot takes one again.
    #[test]
    fn a_full_queue_refuses_at_once() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        // No hashing thread: nothing leaves the queue until the test takes it.
        let (jobs, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let hasher = Hasher { jobs };
        let mut cx = Context::from_waker(Waker::noop());
        let mut poll = || {
            let mut check = Box::pin(hasher.verify("pw".into(), "phc".into()));
            check.as_mut().poll(&mut cx)
        };
        for i in 0..QUEUE {
            assert_eq!(poll(), Poll::Pending, "check {i} should wait in the queue");
        }
        assert_eq!(QUEUE, 64);
        assert_eq!(
            poll(),
            Poll::Ready(None),
            "the 65th check is refused at once"
        );
        rx.recv().unwrap();
        assert_eq!(poll(), Poll::Pending, "a freed slot takes a check again");
        assert_eq!(poll(), Poll::Ready(None));
    }

    /// Prints the time one verification takes with the default parameters (docs/security.md).
    #[test]
    fn argon2_timing() {
        let phc = hash_password("s3cret").unwrap();
        let mut mem = None;
        verify_with(&mut mem, "warm", &phc);
        let n = 5;
        let t = std::time::Instant::now();
        for _ in 0..n {
            verify_with(&mut mem, "s3cret", &phc);
        }
        let reused = t.elapsed();
        let mapped = std::time::Instant::now();
        for _ in 0..n {
            let mut fresh = None;
            verify_with(&mut fresh, "s3cret", &phc);
        }
        eprintln!(
            "argon2id m=19456 KiB t=2 p=1: {:.1} ms per verification reusing the mapping, {:.1} ms mapping afresh",
            reused.as_secs_f64() * 1000.0 / n as f64,
            mapped.elapsed().as_secs_f64() * 1000.0 / n as f64
        );
    }

    #[tokio::test]
    async fn the_queue_answers() {
        let h = Hasher::new(1);
        let phc = hash_password("pw").unwrap();
        assert_eq!(h.verify("pw".into(), phc.clone()).await, Some(true));
        assert_eq!(h.verify("no".into(), phc).await, Some(false));
    }
}
