//! The pipetest experiment of the 2002 epoll announcement: N pipes are watched, K tokens are
//! in flight, and each round waits for readiness, reads the tokens from the ready pipes and
//! writes each token (one byte, one `write`) to another pipe chosen by a seeded pseudo-random
//! generator. Few pipes are active at any time, so a mechanism whose cost per wait grows with
//! N (select, poll) falls behind one whose cost grows with the ready count (epoll).
//!
//! Each mechanism is a [`Rig`]: a set of N pipes plus a way to learn which are readable.
//! [`run_rounds`] drives any rig and keeps the token accounts that the tests check (every
//! token read is written again; at the end exactly K tokens are left in the pipes).

use crate::sys::Io;
use std::time::{Duration, Instant};

/// A pipe set and a readiness mechanism under test.
pub trait Rig {
    /// Wait (at most `timeout_ms`) until some pipes are readable and append their indices to
    /// `ready`. For select and poll this includes preparing the request and scanning the
    /// answer: everything a program does to learn which pipes are ready.
    fn wait(&mut self, ready: &mut Vec<u32>, timeout_ms: i32) -> Result<(), String>;
    /// Nonblocking read from pipe `pipe`'s read end.
    fn read(&mut self, pipe: u32, buf: &mut [u8]) -> Result<Io, String>;
    /// Nonblocking write to pipe `pipe`'s write end.
    fn write(&mut self, pipe: u32, buf: &[u8]) -> Result<Io, String>;
    /// Edge-triggered: a ready pipe must be drained (until a short read or `EAGAIN`) because
    /// it is not reported again until new data arrives.
    fn edge_triggered(&self) -> bool;
    /// The number of pipes (N).
    fn pipes(&self) -> usize;
}

/// A small deterministic generator (xorshift64*), so every method sees the same token paths.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> u32 {
        (((self.next_u64() >> 32) * n as u64) >> 32) as u32
    }
}

/// Token accounts and the state that carries over between rounds.
#[derive(Debug)]
pub struct Tokens {
    rng: Rng,
    /// Tokens whose write found the target pipe full, retried at the next round.
    pending: Vec<(u32, u8)>,
    /// Tokens placed at the start.
    pub initial: u64,
    /// Tokens read from pipes by the rounds.
    pub read: u64,
    /// Tokens written to pipes by the rounds (not counting the initial ones).
    pub written: u64,
}

/// What one measured stretch of rounds did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Rounds (= waits) run.
    pub waits: u64,
    /// Tokens read and passed on.
    pub tokens: u64,
    /// Ready pipes reported, summed over the waits.
    pub ready: u64,
    /// Time spent learning readiness (the wait call plus, for select/poll, set-up and scan).
    pub wait_time: Duration,
    /// Wall time of the whole stretch.
    pub elapsed: Duration,
    /// When several stretches were measured: the lowest and highest tokens/s among them.
    pub spread: (f64, f64),
}

impl Stats {
    /// Tokens passed per second.
    pub fn tokens_per_sec(&self) -> f64 {
        self.tokens as f64 / self.elapsed.as_secs_f64().max(1e-12)
    }
    /// Mean cost of one wait, in nanoseconds.
    pub fn wait_ns(&self) -> f64 {
        self.wait_time.as_nanos() as f64 / self.waits.max(1) as f64
    }
    /// Mean wall time of one round (wait, reads, writes), in nanoseconds.
    pub fn round_ns(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.waits.max(1) as f64
    }
    /// Mean number of ready pipes reported per wait.
    pub fn ready_per_wait(&self) -> f64 {
        self.ready as f64 / self.waits.max(1) as f64
    }
}

/// Bytes read per `read` call: more than the default K, so one read usually empties a pipe.
const READ_CHUNK: usize = 64;

/// Place `k` tokens (bytes 0..k, wrapping) into pseudo-randomly chosen pipes.
pub fn start<R: Rig>(rig: &mut R, k: usize, seed: u64) -> Result<Tokens, String> {
    let mut t = Tokens {
        rng: Rng::new(seed),
        pending: Vec::new(),
        initial: k as u64,
        read: 0,
        written: 0,
    };
    let n = rig.pipes();
    if n == 0 {
        return Err("no pipes".into());
    }
    for i in 0..k {
        let target = t.rng.below(n);
        match rig.write(target, &[i as u8])? {
            Io::Done(1) => {}
            other => return Err(format!("placing token {i}: write gave {other:?}")),
        }
    }
    Ok(t)
}

/// Run rounds until `until` (checked after each wait) or until `max_rounds`, and return what
/// they did. A wait that reports nothing for a second while tokens are in flight is an error
/// (a token was lost or a wakeup missed).
pub fn run_rounds<R: Rig>(
    rig: &mut R,
    tokens: &mut Tokens,
    until: Instant,
    max_rounds: u64,
) -> Result<Stats, String> {
    let n = rig.pipes();
    let edge = rig.edge_triggered();
    let mut ready: Vec<u32> = Vec::with_capacity(n.min(1024));
    let mut buf = [0u8; READ_CHUNK];
    let mut stats = Stats::default();
    let start = Instant::now();
    while stats.waits < max_rounds {
        retry_pending(rig, tokens)?;
        ready.clear();
        let t0 = Instant::now();
        rig.wait(&mut ready, 1000)?;
        let t1 = Instant::now();
        stats.waits += 1;
        stats.wait_time += t1 - t0;
        stats.ready += ready.len() as u64;
        if ready.is_empty() && tokens.pending.is_empty() {
            return Err(format!(
                "no pipe became ready within 1 s with {} tokens in flight (lost wakeup?)",
                tokens.initial
            ));
        }
        for &p in &ready {
            loop {
                let got = match rig.read(p, &mut buf)? {
                    Io::WouldBlock => break,
                    Io::Done(0) => return Err(format!("pipe {p}: unexpected end of file")),
                    Io::Done(got) => got,
                };
                tokens.read += got as u64;
                stats.tokens += got as u64;
                for &token in &buf[..got] {
                    let target = tokens.rng.below(n);
                    match rig.write(target, &[token])? {
                        Io::Done(1) => tokens.written += 1,
                        Io::Done(w) => {
                            return Err(format!("pipe {target}: write of 1 byte gave {w}"))
                        }
                        Io::WouldBlock => tokens.pending.push((target, token)),
                    }
                }
                if !edge || got < buf.len() {
                    break;
                }
            }
        }
        if t1 >= until {
            break;
        }
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

fn retry_pending<R: Rig>(rig: &mut R, tokens: &mut Tokens) -> Result<(), String> {
    let mut i = 0;
    while i < tokens.pending.len() {
        let (target, token) = tokens.pending[i];
        match rig.write(target, &[token])? {
            Io::Done(_) => {
                tokens.written += 1;
                tokens.pending.swap_remove(i);
            }
            Io::WouldBlock => i += 1,
        }
    }
    Ok(())
}

/// Read every pipe until it is empty and return how many tokens were left in them.
pub fn drain<R: Rig>(rig: &mut R) -> Result<u64, String> {
    let mut left = 0u64;
    let mut buf = [0u8; READ_CHUNK];
    for p in 0..rig.pipes() as u32 {
        loop {
            match rig.read(p, &mut buf)? {
                Io::Done(0) | Io::WouldBlock => break,
                Io::Done(got) => left += got as u64,
            }
        }
    }
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
        let mut c = Rng::new(0);
        let hits: std::collections::HashSet<u32> = (0..1000).map(|_| c.below(5)).collect();
        assert_eq!(hits.len(), 5, "every target is reachable");
    }
}
